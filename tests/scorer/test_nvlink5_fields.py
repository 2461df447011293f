"""NVLink5 boards (Blackwell) report NVLink errors in other dcgm-exporter fields: the scorer reads
them as it reads the legacy totals.

Up to Hopper, dcgm-exporter sends NVLink errors as four totals (CRC flit, CRC data, replay,
recovery); NVLink5 counts none of them, and its errors come in ``DCGM_FI_DEV_NVLINK_COUNT_*``
fields (:data:`~gpu_health.telemetry.catalogue.NVLINK5_ERROR_FIELDS`). One history of a physics
family whose NVLink failures have a precursor is written six times, differing only in the
name of the NVLink error field: the legacy CRC-flit total, each of the four NVLink5 counters
the scorer reads, and an NVLink5 counter it does not read (symbol errors, corrected by FEC at a
steady rate on a healthy link). Each is backfilled into a real Prometheus and scored with
``score --at``. Expectations come from the legacy history's answer, never from typed numbers.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gpu_health.sim.families import FAMILIES, write
from gpu_health.telemetry.catalogue import NVLINK5_ERROR_FIELDS
from tests.scorer.dcgm_history import score_at, serve

pytestmark = [pytest.mark.integration]

DAY = 86400
LEGACY = "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL"
NOT_READ = "DCGM_FI_DEV_NVLINK_COUNT_RX_SYMBOL_ERRORS"
#: 16 GPUs on two nodes for 8 days at 10-minute data; seed 3 has NVLink failures whose
#: precursor began before the scored time and which fail after it (checked from failures.csv).
FAMILY = replace(
    FAMILIES["plateau"],
    resolution=600.0,
    warmup_days=1.0,
    precursor_share=1.0,
    failure_share=0.6,
)
GPUS, DAYS, SEED = 16, 8.0, 3
START = 1796083200 - int(DAYS * DAY)
AT = START + int(3.9 * DAY) // 600 * 600
#: NVLink features with data in 3.9 days of history (the 23-day baseline has none yet).
READ_IN_THE_WEEK = {"nvlink_errors_per_min_7d", "nvlink_error_active_hours_7d"}


def _renamed(text: str, name_for: dict[str, str]) -> str:
    """``text`` with the legacy field's samples renamed per GPU (``UUID`` label -> new name)
    and its TYPE line repeated for each new name."""
    out = []
    for line in text.splitlines():
        if line.startswith(f"# TYPE {LEGACY} "):
            out += [line.replace(LEGACY, name) for name in sorted(set(name_for.values()))]
        elif line.startswith(LEGACY + "{"):
            uuid = re.search(r'UUID="([^"]+)"', line)
            assert uuid is not None, line
            out.append(name_for[uuid.group(1)] + line[len(LEGACY) :])
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _score(root: Path, text: str, name: str) -> dict[str, Any]:
    with serve(root, text, name, DAYS) as server:
        return score_at(server.url, AT)


def _nvlink_factors(gpu: dict[str, Any]) -> set[str]:
    return {
        f["feature"]
        for factors in gpu["risk_factors"].values()
        for f in factors
        if f["feature"].startswith("nvlink_")
    }


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("nvlink5")
    write(FAMILY, GPUS, DAYS, SEED, float(START), root)
    failing = [
        row.split(",")
        for row in (root / "failures.csv").read_text().splitlines()[1:]
        if row.split(",")[2] == "nvlink"
    ]
    precursor_by_then = [r for r in failing if r[3] == "true" and float(r[4]) < AT < float(r[1])]
    assert precursor_by_then, "the draw has no NVLink failure with a precursor at the scored time"
    text = (root / "fleet.om").read_text()
    uuids = sorted(set(re.findall(rf'^{LEGACY}{{[^}}]*UUID="([^"]+)"', text, re.M)))
    assert len(uuids) >= GPUS
    out = {"legacy": _score(root, text, "legacy")}
    for name in (*NVLINK5_ERROR_FIELDS, NOT_READ):
        out[name] = _score(root, _renamed(text, dict.fromkeys(uuids, name)), name.lower())
    return out


@pytest.mark.parametrize("field", sorted(NVLINK5_ERROR_FIELDS))
def test_each_nvlink5_counter_reads_as_the_legacy_total(
    answers: dict[str, dict[str, Any]], field: str
) -> None:
    legacy = {g["uuid"]: g for g in answers["legacy"]["gpus"]}
    nvlink5 = {g["uuid"]: g for g in answers[field]["gpus"]}
    assert nvlink5.keys() == legacy.keys()
    flagged = [u for u, g in legacy.items() if _nvlink_factors(g)]
    assert flagged, "no GPU has NVLink evidence in the legacy history"
    for uuid, gpu in legacy.items():
        other = nvlink5[uuid]
        assert other["failure_probability"] == pytest.approx(gpu["failure_probability"]), uuid
        assert other["risk_factors"] == gpu["risk_factors"], uuid
        assert other["failure_class"] == gpu["failure_class"], uuid
    assert answers[field]["empty_features"] == answers["legacy"]["empty_features"]
    assert not set(answers["legacy"]["empty_features"]) & READ_IN_THE_WEEK


def test_a_counter_the_scorer_does_not_read_gives_no_nvlink_evidence(
    answers: dict[str, dict[str, Any]],
) -> None:
    """Symbol errors are corrected by FEC at a steady rate on a healthy NVLink5 link: they are
    not read, so the same counts under that name give no NVLink evidence at all."""
    legacy = {g["uuid"]: g for g in answers["legacy"]["gpus"]}
    not_read = {g["uuid"]: g for g in answers[NOT_READ]["gpus"]}
    assert any(_nvlink_factors(g) for g in legacy.values())
    assert not any(_nvlink_factors(g) for g in not_read.values())
    assert set(answers[NOT_READ]["empty_features"]) >= READ_IN_THE_WEEK
