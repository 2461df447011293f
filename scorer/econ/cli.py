"""``gpu-health econ``: what-if analysis of fleet recommendations under changed parameters."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import TextIO

from gpu_health import cli_validate
from gpu_health.errors import UserError
from gpu_health.prometheus_access import access_from_args, add_access_arguments
from gpu_health.safetext import gpus_counted, shown
from gpu_health.scorer.econ.engine import ACTIONS, EconResult, GpuEconInput, value_fleet
from gpu_health.scorer.econ.fleet import (
    WhatIf,
    compare,
    read_fleet_csv,
    read_fleet_prometheus,
    unvalued_in_prometheus,
)
from gpu_health.scorer.econ.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Value every GPU of a fleet (NPV of keep, repair (only for a hard fault), repurpose, "
        "sell, decommission) with the current parameters and again with --set overrides, and "
        "print how the recommendations "
        "change: counts per action before -> after, the GPUs whose action changed, NPV deltas."
    )
    parser.epilog = (
        "example: gpu-health econ --fleet fleet.csv --set energy_price=0.20 "
        "--set models.h100.rental_rate=1.8"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--fleet",
        metavar="FILE.csv",
        help="fleet CSV: uuid, model, age_days and optionally utilisation (0-1), power_w, p7, "
        "p30, p90, health (0-100), hard_fault, node, gpu; empty cells mean 'not measured'",
    )
    source.add_argument(
        "--prometheus",
        type=cli_validate.http_url,
        metavar="URL",
        help="read the fleet from a Prometheus that scrapes gpu-health-scorer (its "
        "gpu_econ_* input series), e.g. http://127.0.0.1:9090",
    )
    add_access_arguments(
        parser.add_argument_group("Prometheus connection (TLS and credentials, as the scorer's)")
    )
    parser.add_argument(
        "--prometheus.lookback",
        dest="lookback",
        default="1h",
        type=_duration,
        metavar="DURATION",
        help="with --prometheus: use each GPU's latest inputs within this window "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--params",
        metavar="FILE",
        help="economics YAML merged over the shipped defaults (see docs/economics.md)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one parameter for the 'after' run, e.g. energy_price=0.20 or "
        "models.h100.rental_rate=1.8 (repeatable)",
    )
    parser.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="output format (default: %(default)s)",
    )
    parser.add_argument(
        "--top",
        type=cli_validate.integer(0, 100_000),
        default=20,
        metavar="N",
        help="list at most N changed GPUs in text output (default: %(default)s)",
    )


#: Seconds per unit of a Prometheus range duration.
_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}
#: ``--prometheus.lookback`` bounds. ``0s`` and ``99999w`` passed the syntax check and
#: Prometheus answered HTTP 400. A window shorter than a minute misses the series of a scorer
#: scraped every 15 to 60 s; one longer than 90 days reaches past any usual retention (15 days by
#: default) and only makes each ``last_over_time`` read more blocks.
MIN_LOOKBACK_S = 60
MAX_LOOKBACK_S = 90 * 86400


def _duration(text: str) -> str:
    """A Prometheus range duration such as 30m, 1h or 2d, from 1m to 90d; returned as written,
    since it goes into the query's range selector."""
    match = re.fullmatch(r"([0-9]{1,12})(ms|s|m|h|d|w|y)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 30m, 1h, 2d)")
    seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not MIN_LOOKBACK_S <= seconds <= MAX_LOOKBACK_S:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range (allowed: 1m to 90d)")
    return text


def run(args: argparse.Namespace) -> int:
    try:
        base = load_params(args.params)
        changed = load_params(args.params, args.overrides)
        if args.fleet is not None:
            fleet = read_fleet_csv(args.fleet)
        else:
            access = access_from_args(args)  # its files read, and refused, before any query
            print(f"querying {args.prometheus} for the fleet ...", file=sys.stderr)
            fleet = read_fleet_prometheus(args.prometheus, args.lookback, access=access)
            unvalued = unvalued_in_prometheus(args.prometheus, args.lookback, access=access)
            for model, count in sorted(unvalued.items()):
                print(
                    f"warning: the scorer did not value {gpus_counted(count)} of model "
                    f"{shown(model)!r} (no "
                    "economics entry matches it): they are not in this what-if",
                    file=sys.stderr,
                )
        before, skipped = value_fleet(fleet, base)
        after, _ = value_fleet(fleet, changed)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # a GPU skipped by one run only is listed as valued only before or after the change
    valued = {r.uuid for r in after}
    for line in skipped_lines([(gpu, why) for gpu, why in skipped if gpu.uuid not in valued]):
        print(line, file=sys.stderr)
    if not before and not after:
        print("error: no GPU in the fleet matches a configured model", file=sys.stderr)
        return 1
    result = compare(before, after)
    if args.format == "json":
        json.dump(
            _as_json(result, before, after, args.overrides, base.currency), sys.stdout, indent=2
        )
        sys.stdout.write("\n")
    else:
        _print_text(
            result, args.overrides, base.currency, (len(before), len(after)), args.top, sys.stdout
        )
    return 0


#: GPUs a warning names by UUID for each reason; the others are counted.
SKIPPED_NAMED = 3


def skipped_lines(skipped: Sequence[tuple[GpuEconInput, str]]) -> list[str]:
    """One warning per reason (one per model without economics), naming its first
    :data:`SKIPPED_NAMED` GPUs and counting the rest: a fleet of 136 GPUs of unpriced models
    printed 136 lines."""
    by_reason: dict[str, list[str]] = {}
    for gpu, reason in skipped:
        # the engine's reason starts with the GPU ("GPU X: model ... matches no ..."): once per
        # reason, it names the GPUs itself
        general = reason.removeprefix(f"GPU {gpu.uuid}: ")
        by_reason.setdefault(general, []).append(gpu.uuid)
    lines = []
    for reason, uuids in by_reason.items():
        named = ", ".join(shown(u) for u in uuids[:SKIPPED_NAMED])
        more = f" and {len(uuids) - SKIPPED_NAMED} more" if len(uuids) > SKIPPED_NAMED else ""
        gpus = gpus_counted(len(uuids))
        lines.append(f"warning: skipped {gpus} ({named}{more}): {shown(reason)}")
    return lines


def _as_json(
    what: WhatIf,
    before: list[EconResult],
    after: list[EconResult],
    overrides: list[str],
    currency: str,
) -> dict[str, object]:
    after_by = {r.uuid: r for r in after}

    def gpu(old: EconResult | None, new: EconResult | None) -> dict[str, object]:
        either = old or new
        assert either is not None
        return {
            "uuid": either.uuid,
            "model": either.model,
            # null on the side whose parameters value no GPU of this model
            "before": old.recommended_action if old else None,
            "after": new.recommended_action if new else None,
            "npv_before": old.npv if old else None,
            "npv_after": new.npv if new else None,
            "defaulted": list(either.defaulted),
            # read off the survival curve (p30, p90); the same before and after
            "monthly_hazard": either.inputs["monthly_hazard"],
        }

    return {
        "overrides": overrides,
        "currency": currency,
        "gpus": len(before),
        "gpus_after": len(after),
        "counts_before": what.counts_before,
        "counts_after": what.counts_after,
        "value_before": what.value_before,
        "value_after": what.value_after,
        "changes": [c.__dict__ for c in what.changes],
        "only_before": [r.uuid for r in what.only_before],
        "only_after": [r.uuid for r in what.only_after],
        "per_gpu": [gpu(r, after_by.get(r.uuid)) for r in before]
        + [gpu(None, r) for r in what.only_after],
    }


def _named(results: Sequence[EconResult]) -> str:
    """``3 GPUs (GPU-a, GPU-b, GPU-c and 2 more)``, as the skipped-GPU warnings name them."""
    named = ", ".join(shown(r.uuid) for r in results[:SKIPPED_NAMED])
    more = f" and {len(results) - SKIPPED_NAMED} more" if len(results) > SKIPPED_NAMED else ""
    return f"{gpus_counted(len(results))} ({named}{more})"


def _print_text(
    what: WhatIf,
    overrides: list[str],
    currency: str,
    gpus: tuple[int, int],
    top: int,
    out: TextIO,
) -> None:
    label = ", ".join(overrides) if overrides else "(no --set: after = before)"
    one_sided = bool(what.only_before or what.only_after)
    if one_sided:
        valued = f"{gpus_counted(gpus[0])} valued before the change, {gpus[1]:,} after"
    else:
        valued = f"{gpus_counted(gpus[0])} valued"
    out.write(f"what-if: {label}\n{valued}, amounts in {currency}\n")
    if what.only_before:
        out.write(
            f"valued only before the change: {_named(what.only_before)}: no economics entry "
            "matches their model after it\n"
        )
    if what.only_after:
        out.write(
            f"valued only after the change: {_named(what.only_after)}: no economics entry "
            "matched their model before it\n"
        )
    if one_sided:
        out.write(
            "(the counts and fleet values below include them; the changed GPUs and mean NPV "
            "changes cover the GPUs valued both times)\n"
        )
    out.write("\n")
    out.write(f"{'action':<14}{'before':>8}{'after':>8}{'change':>8}\n")
    for action in ACTIONS:
        b, a = what.counts_before[action], what.counts_after[action]
        out.write(f"{action:<14}{b:>8}{a:>8}{a - b:>+8}\n")
    delta = what.value_after - what.value_before
    out.write(
        f"\nfleet value of recommended actions: {what.value_before:,.0f} -> "
        f"{what.value_after:,.0f} ({delta:+,.0f})\n"
    )
    mean = {
        action: sum(d[action] for d in what.npv_deltas.values()) / max(1, len(what.npv_deltas))
        for action in ACTIONS
    }
    out.write(
        "mean NPV change per GPU: " + ", ".join(f"{a} {mean[a]:+,.0f}" for a in ACTIONS) + "\n"
    )
    both = f" (of {len(what.npv_deltas)} valued both times)" if one_sided else ""
    out.write(f"\nGPUs whose recommendation changed: {len(what.changes)}{both}\n")
    for change in what.changes[:top]:
        out.write(
            f"  {change.uuid}  {change.model}  {change.before} -> {change.after}  "
            f"NPV {change.npv_before:,.0f} -> {change.npv_after:,.0f}\n"
        )
    if len(what.changes) > top:
        out.write(f"  ... and {len(what.changes) - top} more (use --top or --format json)\n")
