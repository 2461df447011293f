"""The DCGM backend: a clear error without DCGM, and unit conversion of DcgmReader's answers.

DCGM is not installable here, so the bindings are stubbed with the shape of DCGM's own
``testing/python3/DcgmReader.py`` (``DcgmReader(hostname, fieldIds, updateFrequency,
ignoreBlank)``, ``InitWrapped()``, ``m_dcgmGroup.GetGpuIds()``,
``m_dcgmSystem.discovery.GetGpuAttributes(id).identifiers``,
``GetLatestGpuValuesAsFieldIdDict()``).
"""

from __future__ import annotations

import ctypes.util
import sys
import types
import warnings
from typing import Any

import pytest

from gpu_health.exporter.backends import dcgm
from gpu_health.telemetry.readings import BackendUnavailableError, GpuLostError

#: The names bindings before DCGM 4.6 define (each field's oldest name), with DCGM's ids.
FIELD_IDS = {names[-1]: dcgm.FIELD_IDS[attr] for attr, names in dcgm.NAMES.items()}


def install_stub(
    monkeypatch: pytest.MonkeyPatch,
    latest: dict[int, dict[int, Any]],
    field_ids: dict[str, int] = FIELD_IDS,
    fields: types.ModuleType | None = None,
    **identity: str,
) -> None:
    """``identity``: the GPU's identifiers DCGM answers (uuid, deviceName, ...) to change."""
    fields = fields or types.ModuleType("dcgm_fields")
    for name, field_id in field_ids.items():
        setattr(fields, name, field_id)
    identifiers = types.SimpleNamespace(**{
        "uuid": "GPU-dcgm-0", "deviceName": "NVIDIA H100 80GB HBM3",
        "pciBusId": "00000000:00:06.0", "serial": "123", "vbios": "96.00",
        "driverVersion": "580.159.04", **identity,
    })  # fmt: skip

    class Reader:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs
            watched.extend(kwargs["fieldIds"])
            self.m_dcgmGroup = types.SimpleNamespace(GetGpuIds=lambda: [0])
            self.m_dcgmSystem = types.SimpleNamespace(
                discovery=types.SimpleNamespace(
                    GetGpuAttributes=lambda _id: types.SimpleNamespace(identifiers=identifiers)
                )
            )

        def InitWrapped(self) -> None:
            pass

        def GetLatestGpuValuesAsFieldIdDict(self) -> dict[int, dict[int, Any]]:
            return latest

        def Shutdown(self) -> None:
            pass

    watched: list[int] = []
    reader = types.ModuleType("DcgmReader")
    reader.watched = watched  # type: ignore[attr-defined]
    reader.DcgmReader = Reader  # type: ignore[attr-defined]
    for name, module in {
        "dcgm_fields": fields,
        "DcgmReader": reader,
        "pydcgm": types.ModuleType("pydcgm"),
        "dcgm_structs": types.ModuleType("dcgm_structs"),
        "dcgm_agent": types.ModuleType("dcgm_agent"),
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{name}.so")


def test_missing_bindings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydcgm", None)  # import fails
    with pytest.raises(BackendUnavailableError, match="pydcgm"):
        dcgm.DcgmBackend()


def test_missing_libdcgm_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    install_stub(monkeypatch, {})
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(BackendUnavailableError, match="libdcgm"):
        dcgm.DcgmBackend()


def test_dcgm_values_are_converted_to_base_units(monkeypatch: pytest.MonkeyPatch) -> None:
    f = FIELD_IDS
    install_stub(
        monkeypatch,
        {
            0: {
                f["DCGM_FI_DEV_GPU_TEMP"]: 50,
                f["DCGM_FI_DEV_POWER_USAGE"]: 73.361,
                f["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]: 2788165,
                f["DCGM_FI_DEV_SM_CLOCK"]: 885,
                f["DCGM_FI_DEV_GPU_UTIL"]: 37,
                f["DCGM_FI_DEV_FB_USED"]: 480,
                f["DCGM_FI_DEV_ROW_REMAP_FAILURE"]: 0,
                f["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"]: 2,
            }
        },
    )
    backend = dcgm.DcgmBackend(node="n1")
    (gpu,) = backend.inventory()
    assert (gpu.uuid, gpu.model, gpu.node) == ("GPU-dcgm-0", "NVIDIA H100 80GB HBM3", "n1")
    s = backend.sample(gpu)
    assert s.temperature_gpu_celsius == 50
    assert s.power_watts == 73.361
    assert s.energy_joules == pytest.approx(2788.165)
    assert s.sm_clock_hertz == 885e6
    assert s.utilization_gpu_ratio == pytest.approx(0.37)
    assert s.memory_used_bytes == 480 * 1024 * 1024
    assert s.row_remap_failed is False and s.remapped_rows_uncorrectable == 2
    assert s.fan_speed_ratio is None and s.temperature_memory_celsius is None  # absent, not 0
    backend.close()


def test_dcgm_strings_that_cannot_be_label_values_are_made_servable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the NVML backend's: a name that is not UTF-8 or huge would break or swell every
    scrape; it is served with the bad bytes replaced and cut to 253 characters."""
    install_stub(monkeypatch, {}, deviceName="x" * 1000, serial="1\udcff", vbios="")
    (gpu,) = dcgm.DcgmBackend(node="n1").inventory()
    assert (gpu.model, gpu.serial, gpu.vbios_version) == ("x" * 253, "1\ufffd", None)
    assert (gpu.uuid, gpu.driver_version) == ("GPU-dcgm-0", "580.159.04")


def test_a_gpu_dcgm_has_no_values_for_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    install_stub(monkeypatch, {})
    backend = dcgm.DcgmBackend()
    (gpu,) = backend.inventory()
    with pytest.raises(GpuLostError):
        backend.sample(gpu)


@pytest.mark.parametrize(
    "names",
    [
        ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS",),  # bindings of DCGM 3.3 and later
        ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",),  # older bindings
        ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"),  # both
    ],
)
def test_the_clock_event_bitmask_is_read_under_either_name_of_field_112(
    monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]
) -> None:
    """DCGM 3.3 renamed field 112; bindings that know only one name still give the reasons."""
    ids = {
        **{n: i for n, i in FIELD_IDS.items() if "REASONS" not in n},
        **dict.fromkeys(names, 112),
    }
    install_stub(monkeypatch, {0: {112: 0xC4}}, field_ids=ids)
    backend = dcgm.DcgmBackend()
    assert sys.modules["DcgmReader"].watched.count(112) == 1  # type: ignore[attr-defined]
    (gpu,) = backend.inventory()
    assert backend.sample(gpu).clock_event_reasons == 0xC4
    backend.close()


class Dcgm47Fields(types.ModuleType):
    """``dcgm_fields`` as DCGM 4.6 and later ship it: the new names only, and a module
    ``__getattr__`` that answers a deprecated name with a DeprecationWarning, or refuses it
    when ``DCGM_DEPRECATED`` is 0 (DCGM's ``testing/python3/dcgm_fields.py``)."""

    def __init__(self, deprecated: int, aliases: dict[str, str]) -> None:
        super().__init__("dcgm_fields")
        self.DCGM_DEPRECATED = deprecated
        self.ALIASES = aliases

    def __getattr__(self, name: str) -> Any:
        if name in self.ALIASES and self.DCGM_DEPRECATED:
            warnings.warn(f"{name} is deprecated", DeprecationWarning, stacklevel=2)
            return getattr(self, self.ALIASES[name])
        raise AttributeError(name)


@pytest.mark.parametrize("deprecated", [1, 0])
def test_bindings_that_define_only_dcgm_4_7_names_give_every_field(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, deprecated: int
) -> None:
    """DCGM 4.6 renamed 18 of the fields read (same ids); its bindings reach the old names only
    through a deprecation hook, which DCGM_DEPRECATED=0 switches off. The PCIe byte rates are
    stubbed the same way under the names dcgm-exporter 4.10 gives them (20 in all)."""
    aliases = {names[-1]: names[0] for names in dcgm.NAMES.values() if len(names) > 1}
    fields = Dcgm47Fields(deprecated, aliases)
    new_ids = {names[0]: dcgm.FIELD_IDS[attr] for attr, names in dcgm.NAMES.items()}
    assert len(aliases) == 20
    f = FIELD_IDS  # the same ids under the old names
    install_stub(
        monkeypatch,
        {
            0: {
                f["DCGM_FI_DEV_GPU_TEMP"]: 61,
                f["DCGM_FI_DEV_POWER_USAGE"]: 402.5,
                f["DCGM_FI_DEV_GPU_UTIL"]: 88,
                f["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"]: 3,
                f["DCGM_FI_DEV_PCIE_REPLAY_COUNTER"]: 17,
                f["DCGM_FI_PROF_SM_ACTIVE"]: 0.75,
                f["DCGM_FI_DEV_SM_CLOCK"]: 1980,
                f["DCGM_FI_PROF_PCIE_TX_BYTES"]: 5e9,
            }
        },
        field_ids=new_ids,
        fields=fields,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated name is asked for
        backend = dcgm.DcgmBackend()
    assert sorted(sys.modules["DcgmReader"].watched) == sorted(new_ids.values())  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    (gpu,) = backend.inventory()
    s = backend.sample(gpu)
    assert (s.temperature_gpu_celsius, s.power_watts) == (61, 402.5)
    assert s.utilization_gpu_ratio == pytest.approx(0.88)
    assert (s.remapped_rows_uncorrectable, s.pcie_replays) == (3, 17)
    assert (s.sm_active_ratio, s.sm_clock_hertz) == (0.75, 1980e6)
    assert s.pcie_tx_bytes_per_second == 5e9
    backend.close()


def test_fields_the_bindings_lack_are_named_in_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A field the bindings know under no name is named at start-up, not silently absent."""
    lacking = ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_PROF_SM_ACTIVE")
    ids = {n: i for n, i in FIELD_IDS.items() if n not in lacking}
    install_stub(monkeypatch, {0: {ids["DCGM_FI_DEV_POWER_USAGE"]: 300}}, field_ids=ids)
    backend = dcgm.DcgmBackend()
    (record,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "2 fields" in record.getMessage()
    assert all(name in record.getMessage() for name in lacking)
    (gpu,) = backend.inventory()
    s = backend.sample(gpu)
    assert s.power_watts == 300 and s.temperature_gpu_celsius is None


def test_a_name_the_bindings_give_another_field_is_not_read(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """DCGM 4.6 named field 203 (whole percent) ``DCGM_FI_DEV_GPU_UTIL_RATIO``; DCGM 4.7's field
    reference (as a third-party guide gives it) uses that name for field 1613, a 0-1 ratio, and
    calls 203 ``DCGM_FI_DEV_GPU_UTIL`` again. Read under the newest name, utilization would be
    a hundredth of itself; the backend reads the field by its id."""
    ids = {**FIELD_IDS, "DCGM_FI_DEV_GPU_UTIL_RATIO": 1613}
    install_stub(monkeypatch, {0: {203: 88, 1613: 0.88}}, field_ids=ids)
    caplog.set_level("INFO")
    backend = dcgm.DcgmBackend()
    watched = sys.modules["DcgmReader"].watched  # type: ignore[attr-defined]
    assert 203 in watched and 1613 not in watched
    (gpu,) = backend.inventory()
    assert backend.sample(gpu).utilization_gpu_ratio == pytest.approx(0.88)
    assert any("DCGM_FI_DEV_GPU_UTIL_RATIO (1613)" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    backend.close()


def test_every_field_read_has_its_dcgm_id() -> None:
    """Each field the backend reads is pinned to one DCGM id, and no two share one."""
    assert set(dcgm.FIELD_IDS) == set(dcgm.NAMES)
    assert len(set(dcgm.FIELD_IDS.values())) == len(dcgm.FIELD_IDS)
