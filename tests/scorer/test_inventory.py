"""The asset inventory: formats, validation messages, lookup order, node labels, hot reload."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pytest

from gpu_health.errors import UserError
from gpu_health.scorer.inventory import InventorySource, load_inventory
from gpu_health.scorer.inventory.kube import fields_from_labels, from_series, metric_label

HEADER = (
    "uuid,serial,node,gpu,purchase_date,purchase_price,warranty_end,datacenter,row,rack,"
    "sla_tier,rental_rate,team\n"
)


def _ts(day: str) -> float:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_fields_are_parsed_and_ages_follow_the_dates(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "inv.csv",
        HEADER + "GPU-a,,n1,0,2024-03-01,26500,2027-03-01,fra1,r02,r02-07,gold,2.10,vision\n",
    )
    inventory = load_inventory(path)
    asset = inventory.lookup("GPU-a")
    assert asset is not None
    assert (asset.datacenter, asset.row, asset.rack, asset.team) == (
        "fra1",
        "r02",
        "r02-07",
        "vision",
    )
    assert asset.purchase_price == 26500 and asset.rental_rate == 2.10 and asset.sla_tier == "gold"
    now = _ts("2025-03-01")
    assert asset.age_seconds(now) == pytest.approx(365 * 86400)
    assert asset.warranty_remaining_seconds(now) == pytest.approx(_ts("2027-03-01") - now)
    assert asset.warranty_remaining_seconds(_ts("2028-03-01")) < 0


def test_lookup_prefers_uuid_then_serial_then_slot_then_node(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "inv.csv",
        "uuid,serial,node,gpu,datacenter\n"
        "GPU-a,,,,by-uuid\n"
        ",S-1,,,by-serial\n"
        ",,n1,3,by-slot\n"
        ",,n1,,by-node\n",
    )
    inv = load_inventory(path)

    def dc(uuid: str, node: str = "", gpu: str = "", serial: str = "") -> str | None:
        found = inv.lookup(uuid, node, gpu, serial)
        return found.datacenter if found else None

    assert dc("GPU-a", "n1", "3", "S-1") == "by-uuid"
    assert dc("GPU-x", "n1", "3", "S-1") == "by-serial"
    assert dc("GPU-x", "n1", "3") == "by-slot"
    assert dc("GPU-x", "n1", "5") == "by-node"
    assert dc("GPU-x", "n2", "5") is None


def test_yaml_inventory_with_dates_and_line_numbers(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "inv.yaml",
        "gpus:\n"
        "  - uuid: GPU-a\n"
        "    purchase_date: 2023-06-01\n"
        "    datacenter: ams2\n"
        "  - node: n7\n"
        "    purchase_price: twelve\n",
    )
    with pytest.raises(UserError) as err:
        load_inventory(path)
    assert str(err.value) == (
        f"{path}: line 5: purchase_price: expected a plain number like 26500.50, got 'twelve'"
    )
    _write(path, "- uuid: GPU-a\n  purchase_date: 2023-06-01\n  datacenter: ams2\n")
    asset = load_inventory(path).lookup("GPU-a")
    assert asset is not None and asset.purchase_date == _ts("2023-06-01")


def test_yaml_aliases_and_syntax_errors_are_one_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "inv.yaml",
        "- &a {uuid: GPU-a, datacenter: fra1}\n- node: n1\n  datacenter: *dc\n",
    )
    with pytest.raises(UserError, match=r"inv.yaml: line 3: YAML aliases"):
        load_inventory(path)
    _write(path, "- uuid: GPU-a\n  datacenter: [fra1\n")
    with pytest.raises(UserError, match=r"inv.yaml: line \d+: invalid YAML"):
        load_inventory(path)
    _write(path, "- uuid: GPU-a\n  datacenter: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(UserError, match=r"inv.yaml: line 2: nested more than 16 deep"):
        load_inventory(path)


def test_a_device_or_fifo_is_refused_before_it_is_read(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="/dev/zero: not a regular file"):
        load_inventory("/dev/zero")
    fifo = tmp_path / "inv.csv"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match=r"inv\.csv: not a regular file"):
        load_inventory(fifo)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("GPU-a,,,,2024-13-01,,,,,,,,", "line 2: purchase_date: '2024-13-01' is not a date"),
        ("GPU-a,,,,,-5,,,,,,,", "line 2: purchase_price: -5 is out of range"),
        ('GPU-a,,,,,"26,500",,,,,,,', "line 2: purchase_price: expected a plain number"),
        ("GPU-a,,,,,,,,,,,2e9,", "line 2: rental_rate: 2e+09 is out of range"),
        (",,,,,,,fra1,,,,,", "line 2: needs uuid, serial or node"),
        (",,,2,,,,fra1,,,,,", "line 2: gpu: a GPU slot needs its node"),
        ("GPU-a,,,,,,,,,,,,", "line 2: no fields besides the key"),
        ("GPU-a,,,,,,1850-01-01,,,,,,", "line 2: warranty_end: 1850-01-01 is out of range"),
        ("GPU-a,,,,,,,fra1,,,,,,extra", "line 2: 14 cells, but the header has 13 columns"),
    ],
)
def test_bad_cells_name_file_line_and_field(tmp_path: Path, row: str, message: str) -> None:
    path = _write(tmp_path / "inv.csv", HEADER + row + "\n")
    with pytest.raises(UserError) as err:
        load_inventory(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_unknown_column_and_duplicate_key_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "inv.csv", "uuid,datacentre\nGPU-a,fra1\n")
    with pytest.raises(UserError, match=r"line 2: datacentre: unknown field \(allowed: uuid"):
        load_inventory(path)
    _write(path, "uuid,datacenter\nGPU-a,fra1\nGPU-b,fra1\nGPU-a,ams2\n")
    with pytest.raises(UserError, match=r"line 4: uuid: GPU-a is already listed on line 2"):
        load_inventory(path)


def test_netbox_device_export_is_read_as_node_records(tmp_path: Path) -> None:
    # The "current view" export (display names) with custom fields by label, as NetBox writes it.
    path = _write(
        tmp_path / "netbox_devices.csv",
        "Name,Status,Tenant,Site,Location,Rack,Role,Type,Serial number,Purchase date,"
        "Warranty end\n"
        "gpu-node-001,Active,vision,fra1,hall-a,r01,GPU server,HGX H100,CZ123,2024-01-15,"
        "2027-01-15\n",
    )
    inv = load_inventory(path)
    asset = inv.lookup("GPU-anything", node="gpu-node-001", gpu="4")
    assert asset is not None
    assert (asset.datacenter, asset.row, asset.rack, asset.team) == (
        "fra1",
        "hall-a",
        "r01",
        "vision",
    )
    assert asset.purchase_date == _ts("2024-01-15") and asset.warranty_end == _ts("2027-01-15")
    # "All data" export: import field names and cf_ custom fields.
    _write(path, "name,site,rack,tenant,cf_purchase_price\ngpu-node-002,ams2,r09,nlp,31000\n")
    asset = load_inventory(path).lookup("GPU-x", node="gpu-node-002")
    assert asset is not None and asset.purchase_price == 31000 and asset.datacenter == "ams2"
    _write(path, "name,site,cf_purchase_price\ngpu-node-003,ams2,lots\n")
    with pytest.raises(UserError, match=r"line 2: purchase_price: expected a plain number"):
        load_inventory(path)


def test_node_labels_fill_gaps_but_never_override_the_file() -> None:
    series = [
        {
            "metric": {
                "node": "n1",
                metric_label("topology.kubernetes.io/zone"): "eu-west-1a",
                metric_label("gpu-health.io/rack"): "r07",
                metric_label("gpu-health.io/team"): "nlp",
            }
        },
        {"metric": {"node": "n2", "label_kubernetes_io_os": "linux"}},
    ]
    by_node = from_series(series)
    assert set(by_node) == {"n1"}
    assert (by_node["n1"].datacenter, by_node["n1"].rack) == ("eu-west-1a", "r07")
    specific = fields_from_labels(
        "n3",
        {
            metric_label("topology.kubernetes.io/zone"): "zone-a",
            metric_label("gpu-health.io/datacenter"): "fra1",
        },
    )
    assert specific is not None and specific.datacenter == "fra1"


def _bump(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_hot_reload_keeps_the_last_good_file_and_falls_back_when_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "inv.csv", "uuid,datacenter\nGPU-a,fra1\n")
    source = InventorySource(path)
    assert source.current().lookup("GPU-a").datacenter == "fra1"  # type: ignore[union-attr]

    _write(path, "uuid,datacenter\nGPU-a,ams2\n")
    _bump(path)
    assert source.current().lookup("GPU-a").datacenter == "ams2"  # type: ignore[union-attr]

    _write(path, "uuid,datacenter\nGPU-a,ams2,extra\n")  # a bad edit
    _bump(path)
    with caplog.at_level(logging.WARNING):
        kept = source.current()
    assert kept.lookup("GPU-a").datacenter == "ams2"  # type: ignore[union-attr]
    assert source.reload_errors == 1
    assert any("keeping the last good one" in r.getMessage() for r in caplog.records)

    caplog.clear()
    path.unlink()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert len(source.current()) == 0
    assert sum("not found" in r.getMessage() for r in caplog.records) == 1


def test_invalid_file_at_start_is_an_error_and_a_missing_one_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = _write(tmp_path / "inv.csv", "uuid,purchase_price\nGPU-a,abc\n")
    with pytest.raises(UserError, match="line 2: purchase_price"):
        InventorySource(bad)
    with caplog.at_level(logging.WARNING):
        source = InventorySource(tmp_path / "absent.csv")
    assert len(source.current()) == 0
    assert [r.getMessage() for r in caplog.records if "not found" in r.getMessage()]


def test_unknown_gpus_are_listed_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = InventorySource(_write(tmp_path / "inv.csv", "uuid,datacenter\nGPU-a,fra1\n"))
    with caplog.at_level(logging.WARNING):
        assert source.note_unknown(["GPU-b", "GPU-c"]) == ["GPU-b", "GPU-c"]
        assert source.note_unknown(["GPU-b", "GPU-c"]) == []
        assert source.note_unknown(["GPU-b", "GPU-d"]) == ["GPU-d"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "GPU-b, GPU-c" in lines[0] and "GPU-d" in lines[1]
