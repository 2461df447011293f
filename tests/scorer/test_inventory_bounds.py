"""Inventory records that can match nothing or say impossible things are refused in one line.

Each case was accepted before: a key repeated in a YAML record (the last one won), a GPU slot
of -1 or twenty digits, a warranty ending before the purchase, a purchase years ahead, an empty
YAML file (an empty CSV was already refused), a datacenter named like the plan's placeholder
for GPUs with none, and prices above dollar-sized ceilings that the economics allows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from pathlib import Path

import pytest

from gpu_health.errors import UserError
from gpu_health.scorer.econ import GpuEconInput, load_params, value_gpu
from gpu_health.scorer.econ.params import MAX_AMOUNT, MAX_HOURLY_RATE
from gpu_health.scorer.inventory import InventorySource, load_inventory
from gpu_health.scorer.inventory.fields import NUMBER_RANGES
from gpu_health.scorer.inventory.kube import fields_from_labels, metric_label
from gpu_health.scorer.inventory.loader import parse_inventory
from gpu_health.scorer.inventory.market import parse_market_prices
from gpu_health.scorer.planning.plan import UNKNOWN, GpuRisk, build_plan


def _ts(when: str) -> float:
    return dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC).timestamp()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(UserError) as err:
        load_inventory(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and "\n" not in text, text
    return text


def test_a_key_repeated_in_a_yaml_record_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "inv.yaml",
        "gpus:\n  - node: gpu-node-001\n    datacenter: fra1\n    datacenter: ams\n",
    )
    assert (
        _error(path) == f"{path}: line 4: datacenter: given twice in one record (first on line 3)"
    )
    _write(path, "gpus:\n  - {node: a, team: x}\ngpus:\n  - {node: b, team: y}\n")
    assert _error(path) == f"{path}: line 3: gpus: given twice (first on line 1)"
    # A merge key hides a field under an explicit one the same way (explicit wins silently).
    _write(path, "- node: n1\n  datacenter: fra1\n  <<: {datacenter: ams, team: x}\n")
    assert "line 3: <<: YAML merge keys are not allowed" in _error(path)
    # The same record with each key once still loads, in the datacenter it names.
    _write(path, "- node: gpu-node-001\n  datacenter: fra1\n  team: vision\n")
    asset = load_inventory(path).lookup("GPU-x", node="gpu-node-001")
    assert asset is not None and (asset.datacenter, asset.team) == ("fra1", "vision")


@pytest.mark.parametrize(
    "cell", ["-1", "99999999999999999999", "1024", "1.5", "3a", "+2", "inf"], ids=repr
)
def test_a_gpu_slot_no_node_can_hold_is_refused(tmp_path: Path, cell: str) -> None:
    path = _write(tmp_path / "inv.csv", f"node,gpu,datacenter\nn1,{cell},fra1\n")
    assert _error(path) == (
        f"{path}: line 2: gpu: {cell!r} is not a GPU index (expected a whole number from 0 to 1023)"
    )


def test_a_gpu_slot_is_matched_as_the_exporter_labels_it(tmp_path: Path) -> None:
    """``03`` is slot 3 (the exporter's ``gpu="3"``): kept as typed it matched nothing."""
    path = _write(tmp_path / "inv.csv", "node,gpu,datacenter\nn1,03,fra1\nn1,1023,ams2\n")
    inventory = load_inventory(path)
    found = inventory.lookup("GPU-x", node="n1", gpu="3")
    assert found is not None and found.datacenter == "fra1"
    last = inventory.lookup("GPU-y", node="n1", gpu="1023")
    assert last is not None and last.datacenter == "ams2"
    _write(path, "node,gpu,datacenter\nn1,3,fra1\nn1,03,ams2\n")  # the same slot twice
    assert "line 3: slot: n1 3 is already listed on line 2" in _error(path)


def test_a_warranty_ending_before_the_purchase_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "inv.csv", "node,purchase_date,warranty_end\nn1,2024-03-01,2023-03-01\n"
    )
    assert (
        _error(path)
        == f"{path}: line 2: warranty_end: 2023-03-01 is before purchase_date 2024-03-01"
    )
    _write(path, "node,purchase_date,warranty_end\nn1,2024-03-01,2024-03-01\n")  # no warranty
    assert len(load_inventory(path)) == 1


def test_a_purchase_more_than_a_day_ahead_is_refused() -> None:
    now = _ts("2026-03-10T23:30:00")
    header = "node,purchase_date\n"
    tomorrow = parse_inventory(header + "n1,2026-03-11\n", "inv.csv", now=now)
    assert tomorrow.assets[0].purchase_date == _ts("2026-03-11")
    with pytest.raises(UserError) as err:
        parse_inventory(header + "n1,2026-03-12\n", "inv.csv", now=now)
    assert str(err.value) == (
        "inv.csv: line 2: purchase_date: 2026-03-12 is in the future (today is 2026-03-10); "
        "give the date it was bought"
    )


def test_a_purchase_years_ahead_is_refused_against_the_clock(tmp_path: Path) -> None:
    path = _write(tmp_path / "inv.yaml", "- node: n1\n  purchase_date: 2099-01-01\n")
    assert "line 1: purchase_date: 2099-01-01 is in the future (today is " in _error(path)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("inv.yaml", "", "empty file (expected a list of GPUs, or one key 'gpus' holding it)"),
        ("inv.yaml", "# nothing yet\n", "empty file (expected a list of GPUs"),
        ("inv.yml", "[]\n", "no records (an inventory lists at least one GPU or node)"),
        ("inv.yaml", "gpus: []\n", "no records"),
        ("inv.csv", "", "empty file (expected a header line)"),
        ("inv.csv", "node,datacenter\n", "no records"),
        ("netbox.csv", "Name,Site,Rack\n", "no records"),
    ],
)
def test_an_empty_inventory_is_refused_in_every_format(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    assert problem in _error(_write(tmp_path / name, text))


def test_a_truncated_save_keeps_the_last_good_inventory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "inv.yaml", "- {node: n1, datacenter: fra1}\n")
    source = InventorySource(path)
    _write(path, "")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with caplog.at_level(logging.WARNING):
        kept = source.current()
    assert len(kept) == 1 and source.reload_errors == 1


@pytest.mark.parametrize(("field", "value"), [("datacenter", "unknown"), ("team", "Unknown")])
def test_the_plans_placeholder_name_is_reserved(tmp_path: Path, field: str, value: str) -> None:
    path = _write(tmp_path / "inv.csv", f"node,{field}\nn1,{value}\n")
    assert _error(path) == (
        f"{path}: line 2: {field}: {value!r} is reserved: the plan groups GPUs whose {field} is "
        "not known under it; leave the cell empty instead"
    )
    # Fields the plan does not group by keep the name.
    _write(path, "node,rack,row\nn1,unknown,unknown\n")
    assert len(load_inventory(path)) == 1


def test_the_reserved_name_is_the_plans_placeholder() -> None:
    """What makes the name reserved: a GPU without a datacenter is planned under it."""
    risks = [GpuRisk(uuid="GPU-1", model="H100", probability={"30d": 0.1})]
    groups = {
        g.group for g in build_plan(risks, horizons=("30d",)).groups if g.dimension != "fleet"
    }
    assert UNKNOWN in groups


def test_a_node_labelled_with_the_reserved_name_keeps_its_other_labels() -> None:
    asset = fields_from_labels(
        "n1",
        {
            metric_label("topology.kubernetes.io/zone"): "unknown",
            metric_label("gpu-health.io/rack"): "r07",
        },
    )
    assert asset is not None and (asset.datacenter, asset.rack) == ("", "r07")


def test_prices_are_bounded_by_the_economics_ceilings(tmp_path: Path) -> None:
    """A won-priced H200 (about 45,000,000) and a rate of 15,000 an hour were out of range."""
    assert NUMBER_RANGES == {
        "purchase_price": (0.0, MAX_AMOUNT),
        "rental_rate": (0.0, MAX_HOURLY_RATE),
    }
    path = _write(tmp_path / "inv.csv", "node,purchase_price,rental_rate\nn1,45000000,15000\n")
    asset = load_inventory(path).lookup("GPU-x", node="n1")
    assert asset is not None and (asset.purchase_price, asset.rental_rate) == (45e6, 15000)
    _write(path, "node,purchase_price\nn1,2e12\n")
    assert "purchase_price: 2e+12 is out of range (allowed: 0 to 1e+12)" in _error(path)
    quote = parse_market_prices("model,condition,price,date\nH200,used,30000000,2026-11-01\n", "p")
    assert quote.prices[0].price == 30e6
    with pytest.raises(UserError, match=r"price: 2e\+12 is out of range \(allowed: 0 to 1e\+12\)"):
        parse_market_prices("model,condition,price,date\nH200,used,2e12,2026-11-01\n", "p")


def test_a_won_priced_record_reaches_the_economics() -> None:
    """The engine capped a purchase price at 1e7 and a rental rate at 1,000: a ₩45,000,000 board
    raised, and the scorer dropped the economics of the whole fleet."""
    base = GpuEconInput(
        uuid="GPU-1", model="NVIDIA H100 80GB HBM3", age_days=400, p7=0.01, p30=0.05
    )
    won = dataclasses.replace(base, purchase_price=45e6, rental_rate=15000.0)
    assert value_gpu(won, load_params()).inputs["purchase_price"] == 45e6


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- node: n1\n  team: a\x07b\n", "line 2: invalid YAML: character 0x7 is not allowed"),
        ("- node: n1\n  purchase_date: 2024-02-30\n", "line 1: purchase_date: '2024-02-30' is not"),
        ("- node: n1\n  purchase_price: " + "1" * 5000 + "\n", "line 1: purchase_price: inf is"),
        ("- node: n1\n  team: " + "1" * 5000 + "\n", "line 1: team: longer than 128 characters"),
        ("- node: n1\n  ? " + "x" * 5000 + "\n  : 1\n", "unknown field"),
    ],
    ids=["control-character", "bad-date", "huge-number", "huge-integer-text", "huge-key"],
)
def test_yaml_values_pyyaml_cannot_convert_are_one_line(
    tmp_path: Path, text: str, problem: str
) -> None:
    """These raised a traceback (ReaderError, ValueError) instead of naming the line."""
    message = _error(_write(tmp_path / "inv.yaml", text))
    assert problem in message and len(message) < 400, message
