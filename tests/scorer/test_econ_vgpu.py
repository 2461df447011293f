"""A GPU inside a virtual machine under NVIDIA vGPU is a slice of a board: it is not valued as
the whole board.

A VM's driver reports the name of its vGPU profile (virtual GPU type), not of the board: a board
name, a hyphen, for a MIG-backed profile the number of slices and a hyphen, the frame buffer in GB
and the series letter (Q virtual workstation, B virtual PC, A virtual applications, C compute),
e.g. ``GRID T4-16Q``, ``NVIDIA A40-12Q``, ``GRID A100D-1-20C``, ``NVIDIA H100XM-80C``; the type
names are those of NVIDIA's vGPU user guide
(https://docs.nvidia.com/grid/latest/grid-vgpu-user-guide/index.html) and of the examples of
NVIDIA's vGPU device manager
(https://github.com/NVIDIA/vgpu-device-manager/blob/main/examples/config-example.yaml). The
shipped entries' substrings (``A40`` as a whole word, ``A100``, ``H100``, ...) fit those names,
so each VM's slice got the whole board's purchase price, resale value, rent and repair cost, and
four VMs sharing one A40 were counted as four A40s. A profile's name now fits only an entry whose
``match`` names a profile itself; the shipped entries name boards, so such a GPU takes the
unvalued path (no NPV, no action, said in the log, the API and ``/metrics``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import pytest

from gpu_health.scorer.econ import GpuEconInput, load_params, value_gpu
from gpu_health.scorer.econ.engine import UnknownModelError, value_fleet
from gpu_health.scorer.econ.params import VGPU_PROFILE_NOTE, default_raw
from tests.scorer.test_econ_cli import _econ
from tests.scorer.test_econ_models import REAL_NAMES
from tests.scorer.test_econ_unvalued import _gpu

#: Real board names (NVML's device name on bare metal or in pass-through) -> the shipped entry
#: that values them (None: no entry). ``NVIDIA GH200 480GB`` fits the loose ``H200`` substring,
#: as docs/economics.md says; it stays so.
BOARDS: dict[str, str | None] = {
    **REAL_NAMES,
    "NVIDIA A100-SXM4-40GB": "a100_80gb",
    "NVIDIA A100-PCIE-40GB": "a100_80gb",
    "NVIDIA H100 80GB HBM3": "h100",
    "NVIDIA H100 PCIe": "h100",
    "NVIDIA H100 NVL": "h100",
    "NVIDIA GH200 480GB": "h200",
    "NVIDIA RTX A6000": "rtx_a6000",
    "Tesla V100-SXM2-32GB": "v100",
    "Tesla V100S-PCIE-32GB": "v100",
    "NVIDIA L40S": "l40s",
    "Quadro RTX 6000": None,
}

#: vGPU profile names as a VM's nvidia-smi / NVML reports them -> a board of that profile and
#: the entry that board has. Older drivers prefix "GRID", newer ones "NVIDIA". Each of these
#: was valued as its board before.
PROFILES: dict[str, tuple[str, str]] = {
    "GRID T4-16Q": ("Tesla T4", "t4"),
    "GRID T4-2B4": ("Tesla T4", "t4"),  # a B-series type with its display count
    "NVIDIA A40-12Q": ("NVIDIA A40", "a40"),
    "NVIDIA A40-48Q": ("NVIDIA A40", "a40"),  # the board's whole frame buffer: still a VM's
    "NVIDIA A40-8A": ("NVIDIA A40", "a40"),
    "GRID A100-4C": ("NVIDIA A100-PCIE-40GB", "a100_80gb"),
    "GRID A100D-20C": ("NVIDIA A100-SXM4-80GB", "a100_80gb"),
    "GRID A100D-1-20C": ("NVIDIA A100-SXM4-80GB", "a100_80gb"),  # MIG-backed: 1 slice, 20 GB
    "NVIDIA A100-1-5CME": ("NVIDIA A100-SXM4-40GB", "a100_80gb"),  # with media extensions
    "NVIDIA H100-80C": ("NVIDIA H100 PCIe", "h100"),
    "NVIDIA H100XM-80C": ("NVIDIA H100 80GB HBM3", "h100"),
    "NVIDIA H100L-94C": ("NVIDIA H100 NVL", "h100"),
    "NVIDIA H200X-141C": ("NVIDIA H200", "h200"),
    "GRID V100DX-32Q": ("Tesla V100-SXM2-32GB", "v100"),
    "GRID V100S-16A": ("Tesla V100S-PCIE-32GB", "v100"),
    "NVIDIA L40-48Q": ("NVIDIA L40", "l40"),
    "NVIDIA L40S-48Q": ("NVIDIA L40S", "l40s"),
    "NVIDIA L4-24Q": ("NVIDIA L4", "l4"),
    "NVIDIA A10-24Q": ("NVIDIA A10", "a10"),
    "NVIDIA A10-2B": ("NVIDIA A10", "a10"),
}


def _key(name: str) -> str | None:
    found = load_params().model_for(name)
    return found.key if found else None


@pytest.mark.parametrize("profile", PROFILES)
def test_a_vgpu_profile_is_not_valued_as_its_board(profile: str) -> None:
    board, key = PROFILES[profile]
    assert _key(board) == key  # the board keeps its entry
    assert _key(profile) is None  # its VM's slice gets none
    with pytest.raises(UnknownModelError) as info:
        value_gpu(GpuEconInput(uuid="GPU-v", model=profile, age_days=365), load_params())
    assert str(info.value) == f"GPU GPU-v: model {profile!r} is {VGPU_PROFILE_NOTE}"


def test_real_boards_are_valued_as_before_beside_their_vgpu_slices() -> None:
    """One fleet of every real board name and every profile: each board by its entry (or, without
    one, not valued, as before), every slice not valued."""
    gpus = [
        GpuEconInput(uuid=f"GPU-{i}", model=name, age_days=365)
        for i, name in enumerate([*BOARDS, *PROFILES])
    ]
    results, skipped = value_fleet(gpus, load_params())
    assert sorted(r.model for r in results) == sorted(n for n, k in BOARDS.items() if k)
    assert sorted(g.model for g, _why in skipped) == sorted(
        [*(n for n, k in BOARDS.items() if not k), *PROFILES]
    )
    for name, key in BOARDS.items():
        assert _key(name) == key, name


def _fleet_csv(path: Path, names: list[str]) -> Path:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["uuid", "model", "age_days", "utilisation"])
    writer.writeheader()
    writer.writerows(
        {"uuid": f"GPU-{i}", "model": name, "age_days": 365, "utilisation": 0.8}
        for i, name in enumerate(names)
    )
    path.write_text(out.getvalue())
    return path


def test_the_whatif_skips_vgpu_slices_and_says_so(tmp_path: Path) -> None:
    """``gpu-health econ --fleet``: an A40 and the four 12Q slices of another A40, a T4 and one
    16Q slice. The boards are valued; the slices are skipped with one warning per profile."""
    names = [
        "NVIDIA A40",
        *["NVIDIA A40-12Q"] * 4,
        "Tesla T4",
        "GRID T4-16Q",
    ]
    fleet = _fleet_csv(tmp_path / "fleet.csv", names)
    result = _econ("--fleet", str(fleet), "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(g["model"] for g in report["per_gpu"]) == ["NVIDIA A40", "Tesla T4"]
    assert report["gpus"] == 2
    skipped = sorted(line for line in result.stderr.splitlines() if line.startswith("warning:"))
    # the whole reason, not cut: the note says why a name holding A40 or T4 is not valued
    note = "is a vGPU profile, a VM's share of a board, that no entry names"
    assert skipped == sorted(
        [
            "warning: skipped 4 GPUs (GPU-1, GPU-2, GPU-3 and 1 more): "
            f"model 'NVIDIA A40-12Q' {note}",
            f"warning: skipped 1 GPU (GPU-6): model 'GRID T4-16Q' {note}",
        ]
    )


def test_the_scorer_reports_vgpu_slices_as_not_valued(caplog: pytest.LogCaptureFixture) -> None:
    """The scorer's economics hook (``serve``): the board gets an NPV and an action; each slice
    has none, ``/api/v1/gpus`` says ``valued: false`` with the reason,
    ``gpu_scorer_econ_unvalued_gpus{model}`` (the GPUEconomicsUnvalued alert's series) counts them
    per profile, and the log's one WARNING names each profile."""
    from gpu_health.scorer.api import gpu_json
    from gpu_health.scorer.econ.bridge import make_econ_hook

    fleet = [
        _gpu("GPU-a", "NVIDIA A40"),
        *(_gpu(f"GPU-s{i}", "NVIDIA A40-12Q") for i in range(4)),
        _gpu("GPU-t", "GRID T4-16Q"),
    ]
    hook = make_econ_hook()
    with caplog.at_level(logging.WARNING, logger="gpu_health.scorer.econ.bridge"):
        scored, families = hook(fleet)
    by_uuid = {g.uuid: g for g in scored}
    board = gpu_json(by_uuid["GPU-a"])["economics"]
    assert board["valued"] is True and board["recommended_action"] is not None
    for g in scored[1:]:
        assert g.econ is None, g.uuid
        assert gpu_json(g)["economics"] == {
            "valued": False,
            "reason": f"no economics for model {g.model}: {VGPU_PROFILE_NOTE}",
            "recommended_action": None,
            "npv": None,
            "residual_value": None,
            "currency": None,
            "price_date": None,
        }
    family = next(f for f in families if f.name == "gpu_scorer_econ_unvalued_gpus")
    assert {s.labels["model"]: s.value for s in family.samples} == {
        "NVIDIA A40-12Q": 4.0,
        "GRID T4-16Q": 1.0,
    }
    npv = next(f for f in families if f.name == "gpu_npv")
    assert {s.labels["uuid"] for s in npv.samples} == {"GPU-a"}
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "5 of 6 GPUs not valued" in warning, warning
    assert "'NVIDIA A40-12Q' (4 GPUs), 'GRID T4-16Q' (1 GPU)" in warning, warning
    assert (
        "2 of these models are vGPU profiles, each a VM's share of a board, valued only by an"
        " entry whose match names the profile" in warning
    ), warning


#: The A40, one of its profiles in two cases, and another of its profiles.
PROFILES_OF_A40 = ["NVIDIA A40", "NVIDIA A40-12Q", "nvidia a40-12q", "NVIDIA A40-48Q"]


def test_an_entry_that_names_a_profile_prices_it(tmp_path: Path) -> None:
    """The warning's advice holds for a slice: an entry of the parameter file whose ``match``
    names the profile (``A40-12Q``, plain or as a whole word) values that profile with its own
    prices; the board keeps its entry and another profile of it stays unvalued."""
    slice_entry = dict(default_raw()["models"]["a40"], match=["A40-12Q"], purchase_price=1162.5)
    for whole_word in (False, True):
        slice_entry["match_whole_word"] = whole_word
        path = tmp_path / "econ.yaml"
        path.write_text(json.dumps({"models": {"a40_12q": slice_entry}}))
        params = load_params(path)
        assert [(n, getattr(params.model_for(n), "key", None)) for n in PROFILES_OF_A40] == [
            ("NVIDIA A40", "a40"),
            ("NVIDIA A40-12Q", "a40_12q"),
            ("nvidia a40-12q", "a40_12q"),
            ("NVIDIA A40-48Q", None),
        ]
        result = value_gpu(GpuEconInput(uuid="GPU-s", model="NVIDIA A40-12Q", age_days=0), params)
        assert result.npv["decommission"] == pytest.approx(1162.5 * 0.05 - 100)


@pytest.mark.parametrize(
    ("needle", "other"),
    [("A100-1-5C", "NVIDIA A100-1-5CME"), ("T4-1B", "GRID T4-1B4"), ("P40-2B", "GRID P40-2B4")],
)
def test_an_entry_for_a_profile_fits_no_longer_profile(
    tmp_path: Path, needle: str, other: str
) -> None:
    """A profile's entry fits that profile only, as a whole word even where the entry does not
    ask for it: ``A100-1-5C`` is not the media-extension type ``A100-1-5CME``, ``T4-1B`` not the
    older ``T4-1B4``."""
    entry = dict(default_raw()["models"]["a100_80gb"], match=[needle], purchase_price=1000.0)
    path = tmp_path / "econ.yaml"
    path.write_text(json.dumps({"models": {"slice": entry}}))
    params = load_params(path)
    assert getattr(params.model_for(f"NVIDIA {needle}"), "key", None) == "slice"
    assert params.model_for(other) is None


def test_a_boards_market_quote_does_not_price_its_slice(tmp_path: Path) -> None:
    """The scorer's market quotes (``--market.prices``) follow the same rule: a priced A40-12Q
    slice is not sold at a quote for the whole ``NVIDIA A40`` board, while the board is; a quote
    naming the profile prices the slice."""
    from gpu_health.scorer.econ.bridge import make_econ_hook
    from gpu_health.scorer.inventory.market import parse_market_prices

    slice_entry = dict(default_raw()["models"]["a40"], match=["A40-12Q"], purchase_price=1162.5)
    params = tmp_path / "econ.yaml"
    params.write_text(
        json.dumps({"models": {"a40_12q": slice_entry, "a40": default_raw()["models"]["a40"]}})
    )
    header = "model,condition,price,date\n"
    board_quote = header + "NVIDIA A40,used,4000,2026-01-01\n"
    for quotes, slice_date in (
        (board_quote, ""),
        (board_quote + "A40-12Q,used,900,2026-02-01\n", "2026-02-01"),
    ):
        market = parse_market_prices(quotes, "market.csv")
        hook = make_econ_hook(params, market=market)
        board, piece = hook([_gpu("GPU-a", "NVIDIA A40"), _gpu("GPU-s", "NVIDIA A40-12Q")])[0]
        assert board.econ is not None and board.econ.price_date == "2026-01-01"
        assert piece.econ is not None and piece.econ.price_date == slice_date


def test_the_report_says_why_a_profile_is_not_valued() -> None:
    """The report's per-GPU cell gives the scorer's reason, and its "not valued" line says which
    of the models are vGPU profiles and what values them (the K80 is simply unpriced)."""
    from gpu_health.report.model import FleetReport
    from gpu_health.report.text import action_cell, unvalued_line
    from gpu_health.scorer.econ.engine import not_valued_reason

    assert action_cell(None, not_valued_reason("NVIDIA A40-12Q")) == (
        "not valued (no economics for model NVIDIA A40-12Q: a vGPU profile, a VM's share of a"
        " board, that no entry names)"
    )
    report = FleetReport(prometheus="p", generated_at=0.0, period="24h", schema="ours")
    report.unvalued = {"NVIDIA A40-12Q": 4, "GRID T4-16Q": 1, "Tesla K80": 2}
    line = unvalued_line(report)
    assert line.startswith("not valued: 7 GPUs"), line
    assert line.endswith(
        "; 2 of these models are vGPU profiles, each a VM's share of a board, valued only by an"
        " entry whose match names the profile (match: [A40-12Q]), never by its board's"
    ), line
    report.unvalued = {"Tesla K80": 2}
    assert "vGPU" not in unvalued_line(report)
    report.unvalued = {"NVIDIA A40-12Q": 4}
    assert unvalued_line(report).endswith(
        "; it is a vGPU profile, a VM's share of a board,"
        " valued only by an entry whose match names the"
        " profile (match: [A40-12Q]), never by its board's"
    )


@pytest.mark.parametrize(
    ("unvalued", "said"),
    [
        ({"NVIDIA A40-12Q": 4, "Tesla K80": 1}, "; 1 of these models is a vGPU profile, a VM's"),
        ({"NVIDIA A40-12Q": 4}, "; it is a vGPU profile, a VM's share of a board, valued"),
        ({"Tesla K80": 1}, ""),
    ],
)
def test_the_warning_counts_profiles_in_good_grammar(
    caplog: pytest.LogCaptureFixture, unvalued: dict[str, int], said: str
) -> None:
    """One profile among other unvalued models is "1 of these models is", a lone profile "it
    is", and a fleet without profiles hears nothing of them."""
    from gpu_health.scorer.econ.bridge import UnvaluedLog

    with caplog.at_level(logging.WARNING, logger="gpu_health.scorer.econ.bridge"):
        UnvaluedLog(["A40", "T4"]).note(unvalued, 10)
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if said:
        assert said in warning, warning
    else:
        assert "vGPU" not in warning, warning
