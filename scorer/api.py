"""Read-only JSON API: GPUs ranked by failure risk, and its OpenAPI document.

It answers from the latest snapshot only (never queries Prometheus on a request), so a client
hammering it cannot load Prometheus, and an outage shows up as ``results_age_seconds``.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from typing import Any

from gpu_health import __version__
from gpu_health.scorer.factor_labels import factor_label
from gpu_health.scorer.model import HORIZONS
from gpu_health.scorer.rules import RUNBOOKS
from gpu_health.scorer.service import GpuScore, Scorer
from gpu_health.telemetry.state import STATES
from gpu_health.web.protocol import GZIP_LEVEL, accepts_gzip
from gpu_health.web.server import Handler, Request, Response

MAX_LIMIT = 100_000


def _num(value: float) -> float | None:
    return value if math.isfinite(value) else None


def gpu_json(g: GpuScore) -> dict[str, Any]:
    out: dict[str, Any] = {
        "node": g.node,
        "gpu": g.gpu,
        "uuid": g.uuid,
        "model": g.model,
        "state": g.state,
        "state_reasons": list(g.state_reasons),
        "failure_probability": {h: _num(g.probability[h]) for h in HORIZONS},
        "flagged": {h: g.flagged[h] for h in HORIZONS},
        "risk_factors": {
            h: [
                {"feature": f, "label": factor_label(f), "contribution": v}
                for f, v in g.risk_factors[h]
            ]
            for h in HORIZONS
        },
        "anomaly_score": _num(g.anomaly),
        "inputs": {k: _num(v) for k, v in g.inputs.items()},
        "time_to_failure_seconds": {q: _num(v) for q, v in g.time_to_failure.items()},
        "failure_class": {
            "class": g.failure_class or None,
            "probability": _num(g.failure_class_probability),
            "runbook": RUNBOOKS.get(g.failure_class),
        },
    }
    econ = g.econ
    if econ is not None:
        out["economics"] = {
            "valued": True,
            "reason": None,
            "recommended_action": econ.recommended_action,
            "npv": dict(econ.npv),
            "residual_value": econ.residual_value,
            "currency": econ.currency,
            # Date of the market-price quote behind the sell value ("" = resale curve).
            "price_date": getattr(econ, "price_date", ""),
        }
    elif g.econ_unvalued:
        # Said, not left out: a GPU of a model without economics (a failed one included) has
        # no NPV and no action, and a client reading economics.recommended_action gets null.
        out["economics"] = {
            "valued": False,
            "reason": g.econ_unvalued,
            "recommended_action": None,
            "npv": None,
            "residual_value": None,
            "currency": None,
            "price_date": None,
        }
    return out


def _bad(message: str) -> Response:
    body = json.dumps({"error": message}).encode()
    return Response(400, body, "application/json")


def gpus_handler(scorer: Scorer) -> Handler:
    def handle(request: Request) -> Response:
        sort = request.query.get("horizon", ["30d"])[-1]
        if sort not in HORIZONS:
            return _bad(f"horizon must be one of {', '.join(HORIZONS)}")
        limit_text = request.query.get("limit", [str(MAX_LIMIT)])[-1]
        # ASCII digits only, and few of them: str.isdigit() also takes '²' and '٣', which int()
        # refuses or reads, and int() of thousands of digits is refused too.
        digits = limit_text.isascii() and limit_text.isdigit() and len(limit_text) <= 9
        if not digits or not 0 < int(limit_text) <= MAX_LIMIT:
            return _bad(f"limit must be an integer from 1 to {MAX_LIMIT}")
        snap, error = scorer.current()
        # Failed and absent GPUs first ("failed now"), then degraded, then healthy; by risk within.
        gpus = snap.ranked(sort) if snap else ()
        body = {
            "status": "ok" if snap is not None else "no_results_yet",
            "generated_at": snap.finished_at if snap else None,
            "results_age_seconds": (time.time() - snap.finished_at) if snap else None,
            "last_error": error or None,
            "schema": snap.schema if snap else None,
            "empty_features": list(snap.empty_features) if snap else [],
            "history": snap.history if snap else None,
            "sorted_by": sort,
            "total": len(gpus),
            "gpus": [gpu_json(g) for g in gpus[: int(limit_text)]],
        }
        return _json_response(request, json.dumps(body).encode())

    return handle


#: Answers below this are sent as they are: gzip would save little and cost a header.
GZIP_MIN_BYTES = 1024


def _json_response(request: Request, body: bytes) -> Response:
    """A JSON answer, gzipped when the client accepts it and it is large: the ranking of
    10,000 GPUs is 15.9 MB of JSON (an outside trial), a few MB gzipped."""
    if len(body) >= GZIP_MIN_BYTES and accepts_gzip(request.headers.get("Accept-Encoding", "")):
        headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return Response(
            200, gzip.compress(body, compresslevel=GZIP_LEVEL), "application/json", headers
        )
    return Response(200, body, "application/json", {"Vary": "Accept-Encoding"})


def openapi_document() -> dict[str, Any]:
    # null: not known (an absent GPU whose whole node stopped reporting)
    prob = {"type": "object", "properties": {h: {"type": ["number", "null"]} for h in HORIZONS}}
    factor = {
        "type": "object",
        "properties": {
            "feature": {"type": "string"},
            "label": {"type": "string", "description": "What the feature measures, in words."},
            "contribution": {"type": "number"},
        },
    }
    gpu = {
        "type": "object",
        "required": ["node", "gpu", "uuid", "model", "failure_probability"],
        "properties": {
            "node": {"type": "string"},
            "gpu": {"type": "string"},
            "uuid": {"type": "string"},
            "model": {"type": "string"},
            "state": {"type": "string", "enum": list(STATES)},
            "state_reasons": {"type": "array", "items": {"type": "string"}},
            "failure_probability": {
                **prob,
                "description": "Calibrated probability of failure within the horizon.",
            },
            "flagged": {
                "type": "object",
                "properties": {h: {"type": "boolean"} for h in HORIZONS},
                "description": "The GPU stands out: for the rule, a hazard at least 8 times "
                "that of a GPU without evidence in the same fleet now (never under 8 times the "
                "public base rate); for a trained model, a probability at or above its "
                "calibrated threshold.",
            },
            "risk_factors": {
                "type": "object",
                "properties": {h: {"type": "array", "items": factor} for h in HORIZONS},
            },
            "anomaly_score": {"type": ["number", "null"]},
            "time_to_failure_seconds": {
                "type": "object",
                "description": "Time to failure at quantiles 0.1, 0.5, 0.9 (an 80 % interval).",
                "additionalProperties": {"type": ["number", "null"]},
            },
            "failure_class": {
                "type": "object",
                "properties": {
                    "class": {
                        "type": ["string", "null"],
                        "enum": ["memory", "bus", "nvlink", "thermal_power", "other", None],
                    },
                    "probability": {"type": ["number", "null"]},
                    "runbook": {"type": ["string", "null"]},
                },
            },
            "inputs": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
            "economics": {
                "type": "object",
                "description": "The economic valuation; absent when the economics did not run "
                "(--no-econ). A GPU the economics could not value has valued false, the reason, "
                "and null for the rest.",
                "required": ["valued", "reason", "recommended_action"],
                "properties": {
                    "valued": {
                        "type": "boolean",
                        "description": "False when the GPU has no valuation (see reason).",
                    },
                    "reason": {
                        "type": ["string", "null"],
                        "description": "Why the GPU is not valued, e.g. 'no economics for "
                        "model Tesla K80' (add an entry with --econ.params); null "
                        "when valued.",
                    },
                    "recommended_action": {
                        "type": ["string", "null"],
                        "enum": ["keep", "repair", "repurpose", "sell", "decommission", None],
                    },
                    "npv": {
                        "type": ["object", "null"],
                        "additionalProperties": {"type": "number"},
                    },
                    "residual_value": {"type": ["number", "null"]},
                    "currency": {"type": ["string", "null"]},
                    "price_date": {
                        "type": ["string", "null"],
                        "description": "Date of the market price behind the sell NPV, or empty.",
                    },
                },
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gpu-health-scorer",
            "version": __version__,
            "description": "GPUs ranked by predicted failure risk (read-only).",
        },
        "paths": {
            "/api/v1/gpus": {
                "get": {
                    "summary": "GPUs ranked by state (failed, absent, degraded, healthy) then risk",
                    "parameters": [
                        {
                            "name": "horizon",
                            "in": "query",
                            "schema": {"type": "string", "enum": list(HORIZONS), "default": "30d"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "Latest scoring results",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "status": {
                                                "type": "string",
                                                "enum": ["ok", "no_results_yet"],
                                            },
                                            "generated_at": {"type": ["number", "null"]},
                                            "results_age_seconds": {"type": ["number", "null"]},
                                            "last_error": {"type": ["string", "null"]},
                                            "schema": {"type": ["string", "null"]},
                                            "empty_features": {
                                                "type": "array",
                                                "items": {"type": "string"},
                                            },
                                            "history": {
                                                "type": ["string", "null"],
                                                "enum": ["raw", "recorded", None],
                                            },
                                            "sorted_by": {"type": "string"},
                                            "total": {"type": "integer"},
                                            "gpus": {"type": "array", "items": gpu},
                                        },
                                    }
                                }
                            },
                        },
                        "400": {"description": "Bad query parameter"},
                    },
                }
            }
        },
    }


def openapi_handler() -> Handler:
    body = json.dumps(openapi_document(), indent=2).encode()

    def handle(_: Request) -> Response:
        return Response(200, body, "application/json")

    return handle
