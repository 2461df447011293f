"""deploy/dcgm-exporter/gpu-health-counters.csv: the dcgm-exporter fields every reader needs.

dcgm-exporter's default counters leave out ECC, clock-hold violations, retired pages and
NVLink errors, so a fleet on the defaults gives the scorer none of them. The shipped CSV must
list every field the scorer's features, the GPU state and the failure scan send, in
dcgm-exporter's own format, with the metric type the catalogue reads it as.
"""

from __future__ import annotations

import re
from pathlib import Path

from gpu_health.scorer import labels
from gpu_health.scorer.feature_plan import plan_queries
from gpu_health.scorer.features import FEATURES, counters_hint, schema_by_name
from gpu_health.telemetry.schema import DCGM_EXPORTER_DEFAULTS
from gpu_health.telemetry.state_queries import state_queries

CSV = Path("deploy/dcgm-exporter/gpu-health-counters.csv")


def _rows(root: Path) -> dict[str, str]:
    """Field -> metric type, parsed as dcgm-exporter parses the file (a ``#`` line is a
    comment; every other non-empty line is ``field, type, help``)."""
    rows: dict[str, str] = {}
    for number, line in enumerate((root / CSV).read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        assert len(parts) >= 3 and parts[2], f"{CSV}:{number}: field, type, help"
        field, kind = parts[0], parts[1]
        assert re.fullmatch(r"DCGM_FI_[A-Z0-9_]+", field), f"{CSV}:{number}: {field}"
        assert kind in ("gauge", "counter", "label"), f"{CSV}:{number}: {kind}"
        assert field not in rows, f"{CSV}:{number}: {field} listed twice"
        rows[field] = kind
    return rows


def _fields_read() -> set[str]:
    """Every dcgm field named in what the scorer, the GPU state and the failure scan send."""
    texts = list(plan_queries(schema_by_name("dcgm"), FEATURES, True).queries)
    texts += state_queries("dcgm").values()
    names = labels.DCGM
    texts += [names.presence, names.dbe, names.remapped_uncorrectable, names.remap_failed]
    texts += [names.xid_last_value or ""]
    return {name for text in texts for name in re.findall(r"DCGM_FI_[A-Z0-9_]+", text)}


def test_every_field_a_reader_sends_is_listed(repo_root: Path) -> None:
    listed = _rows(repo_root)
    read = _fields_read()
    assert len(read) >= 20  # the parse of the queries found them
    assert read - set(listed) == set()


def test_dcgm_exporters_defaults_are_kept_as_it_declares_them(repo_root: Path) -> None:
    listed = _rows(repo_root)
    assert {f: listed.get(f) for f in DCGM_EXPORTER_DEFAULTS} == DCGM_EXPORTER_DEFAULTS


def test_the_log_names_only_signals_the_exporter_sends_none_of() -> None:
    read = [
        "ecc_corrected_per_day_7d",
        "ecc_corrected_per_day_prior_23d",
        "nvlink_errors_per_min_7d",
    ]
    hint = counters_hint("dcgm", read, read)
    assert hint is not None
    assert hint.startswith("dcgm-exporter sends no ECC, NVLink errors (its default counters")
    assert "deploy/dcgm-exporter/gpu-health-counters.csv" in hint
    # a window longer than the history so far is not a missing signal
    assert counters_hint("dcgm", read, ["ecc_corrected_per_day_prior_23d"]) is None
    assert counters_hint("ours", read, read) is None
