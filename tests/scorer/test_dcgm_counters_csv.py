"""deploy/dcgm-exporter/gpu-health-counters.csv: the dcgm-exporter fields every reader needs.

dcgm-exporter's default counters leave out ECC, clock-hold violations, retired pages and
NVLink errors, so a fleet on the defaults gives the scorer none of them. The shipped CSV must
list every field the scorer's features, the GPU state and the failure scan send, in
dcgm-exporter's own format, with the metric type the catalogue reads it as.

NVLink5 boards (Blackwell) count their NVLink errors in other fields, and one of the main
file's fields cannot be collected beside those on a GB200, so they get a file of their own
(``gpu-health-counters-blackwell.csv``): the main file's fields with exactly those changes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from gpu_health import stack
from gpu_health.scorer import labels
from gpu_health.scorer.feature_plan import plan_queries
from gpu_health.scorer.features import FEATURES, counters_hint, schema_by_name
from gpu_health.telemetry.catalogue import CATALOGUE, NVLINK5_ERROR_FIELDS, by_name
from gpu_health.telemetry.schema import DCGM_EXPORTER_DEFAULTS
from gpu_health.telemetry.state_queries import state_queries
from tests.scorer_fleet import DAY, make_fleet, openmetrics

CSV = Path("deploy/dcgm-exporter/gpu-health-counters.csv")
BLACKWELL_CSV = Path("deploy/dcgm-exporter/gpu-health-counters-blackwell.csv")
#: The NVLink error totals up to NVLink4, which NVLink5 does not count.
LEGACY_NVLINK = {
    f.name for f in by_name()["gpu_nvlink_errors_total"].dcgm if f.name not in NVLINK5_ERROR_FIELDS
}
#: Collected in one field group with the NVLink5 counters on a GB200, neither is (DCGM#265).
NOT_BESIDE_NVLINK5 = {"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"}
SCORER = [sys.executable, "-m", "gpu_health.scorer.cli"]
START = 1_700_000_000


def _rows(root: Path, csv: Path = CSV) -> dict[str, str]:
    """Field -> metric type, parsed as dcgm-exporter parses the file (a ``#`` line is a
    comment; every other non-empty line is ``field, type, help``)."""
    rows: dict[str, str] = {}
    for number, line in enumerate((root / csv).read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        assert len(parts) >= 3 and parts[2], f"{csv}:{number}: field, type, help"
        field, kind = parts[0], parts[1]
        assert re.fullmatch(r"DCGM_FI_[A-Z0-9_]+", field), f"{csv}:{number}: {field}"
        assert kind in ("gauge", "counter", "label"), f"{csv}:{number}: {kind}"
        assert field not in rows, f"{csv}:{number}: {field} listed twice"
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
    """A field read under both of its names (``DcgmField.aliases``, or its DCGM 4.6 name,
    ``DcgmField.renamed``) is listed under one: a counters file may name a field only once.
    The main file lists every field but the NVLink5 counters; the Blackwell file every field
    but the ones NVLink5 boards do not send."""
    read = _fields_read()
    assert len(read) >= 20  # the parse of the queries found them
    assert read >= set(NVLINK5_ERROR_FIELDS) | LEGACY_NVLINK
    primary = {a: f.name for spec in CATALOGUE for f in spec.dcgm for a in f.aliases}
    primary |= {f.renamed: f.name for spec in CATALOGUE for f in spec.dcgm if f.renamed}
    for csv, left_out in (
        (CSV, set(NVLINK5_ERROR_FIELDS)),
        (BLACKWELL_CSV, LEGACY_NVLINK | NOT_BESIDE_NVLINK5),
    ):
        listed = _rows(repo_root, csv)
        missing = {n for n in read - set(listed) if primary.get(n) not in listed}
        assert missing == left_out & read, csv


def test_the_blackwell_file_differs_from_the_main_one_only_in_nvlink5(repo_root: Path) -> None:
    """Same fields with the same types, but NVLink5's error counters in place of the legacy
    totals, and no field that cannot be collected beside them."""
    main, blackwell = _rows(repo_root), _rows(repo_root, BLACKWELL_CSV)
    expected = {f: k for f, k in main.items() if f not in LEGACY_NVLINK | NOT_BESIDE_NVLINK5}
    expected |= dict.fromkeys(NVLINK5_ERROR_FIELDS, "counter")
    assert blackwell == expected
    assert set(main) >= NOT_BESIDE_NVLINK5 | LEGACY_NVLINK


def test_dcgm_exporters_defaults_are_kept_as_it_declares_them(repo_root: Path) -> None:
    for csv in (CSV, BLACKWELL_CSV):
        listed = _rows(repo_root, csv)
        assert {f: listed.get(f) for f in DCGM_EXPORTER_DEFAULTS} == DCGM_EXPORTER_DEFAULTS, csv


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


def test_score_names_the_nodes_that_run_the_default_counters(
    tmp_path: Path, prometheus_factory
) -> None:
    """Part of a dcgm-exporter fleet on its default counters sends no ECC: ``score`` says which
    nodes, once, and nothing when every GPU sends it."""
    fleet = make_fleet()
    text = openmetrics(fleet, days=6.5, step=1800, schema="dcgm", start=START)
    on_defaults = {g.uuid for g in fleet if g.node == "node1"}
    kept = [
        line
        for line in text.splitlines()
        if not (line.startswith("DCGM_FI_DEV_ECC_") and any(f'"{u}"' in line for u in on_defaults))
    ]
    stderr = {}
    for name, lines in (("part", kept), ("whole", text.splitlines())):
        om = tmp_path / f"{name}.om"
        om.write_text("\n".join(lines) + "\n")
        stack.promtool_backfill(om, tmp_path / f"tsdb-{name}", block_duration="480h")
        server = prometheus_factory(data_dir=tmp_path / f"tsdb-{name}")
        command = [*SCORER, "score", "--prometheus.url", server.url, "--schema", "dcgm"]
        result = subprocess.run(
            [*command, "--at", str(START + 6.4 * DAY), "--model", "rules"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        stderr[name] = result.stderr
    alive = sum(1 for g in fleet if g.node == "node1" and (g.fails_at or 1e12) > 6.4 * DAY)
    total = sum(1 for g in fleet if (g.fails_at or 1e12) > 6.4 * DAY)
    assert (
        f"{alive} of {total} GPUs send no ECC (node1): their dcgm-exporter runs without"
        in (stderr["part"])
    )
    assert "send no ECC" not in stderr["whole"]
