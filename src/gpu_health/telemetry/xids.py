"""The XID catalogue: which codes the exporter reports from birth, their names and classes.

Why a catalogue: a counter series that appears only with its first event is invisible to
``increase()`` (there is no earlier sample to subtract from; on the Prometheus and the
VictoriaMetrics of the tests alike, ``tests/scorer/test_xid_first_occurrence.py``, which is why
the scorer adds the first reading of a code outside this catalogue whose series is born in its
window). The exporter therefore creates
``gpu_xid_errors_total{xid}`` at 0 for every code listed here as soon as it watches a GPU, and
``gpu_xid_class_errors_total{class}`` at 0 for every class. Codes and descriptions follow
NVIDIA's Xid catalog (docs.nvidia.com/deploy/xid-errors/); the classes group codes by what an
operator does about them and are this project's own.

Label values stay bounded whatever a driver (or a forged kernel-log line) reports: a code outside
``1..MAX_XID_CODE`` is counted under ``xid="other"`` (:data:`XID_OTHER`), and a class is always
one of :data:`XID_CLASSES`.
"""

from __future__ import annotations

import functools
import re

#: Codes above this (or below 1) are counted as ``xid="other"``; NVIDIA's catalog ends in the
#: 150s today, so the margin leaves room for new drivers without unbounded label values.
MAX_XID_CODE = 999
#: The key under which out-of-range codes are counted in ``GpuSample.xid_counts``.
XID_OTHER = -1

#: code -> (description, class). Descriptions abridged from NVIDIA's Xid catalog.
XID_CATALOGUE: dict[int, tuple[str, str]] = {
    8: ("GPU stopped processing (timeout)", "timeout"),
    13: ("graphics engine exception", "application"),
    31: ("GPU memory page fault (MMU fault)", "application"),
    32: ("invalid or corrupted push buffer stream", "application"),
    43: ("GPU stopped processing (application channel reset)", "application"),
    45: ("preemptive cleanup after previous errors", "application"),
    46: ("GPU stopped processing", "timeout"),
    48: ("double-bit ECC error", "uncorrectable_ecc"),
    61: ("internal micro-controller breakpoint/warning", "firmware"),
    62: ("internal micro-controller halt", "firmware"),
    63: ("ECC page retirement or row-remapping event", "row_remap"),
    64: ("ECC page retirement or row-remapping failure", "row_remap"),
    68: ("video processor exception", "application"),
    69: ("graphics engine class error", "application"),
    74: ("NVLink error", "interconnect"),
    79: ("GPU has fallen off the bus", "fallen_off_bus"),
    92: ("high single-bit ECC error rate", "corrected_ecc"),
    94: ("contained ECC error", "contained_ecc"),
    95: ("uncontained ECC error", "uncontained_ecc"),
    109: ("context-switch timeout", "timeout"),
    119: ("GSP RPC timeout", "gsp"),
    120: ("GSP error", "gsp"),
    121: ("C2C link error", "interconnect"),
    140: ("unrecovered ECC error", "uncorrectable_ecc"),
    143: ("GPU initialisation failure", "gpu_init"),
    144: ("NVLink SAW error (NVLink5)", "interconnect"),
    145: ("NVLink RLW error (NVLink5)", "interconnect"),
    146: ("NVLink TLW error (NVLink5)", "interconnect"),
    147: ("NVLink TREX error (NVLink5)", "interconnect"),
    148: ("NVLink NVLPW control error (NVLink5)", "interconnect"),
    149: ("NVLink NETIR error (NVLink5)", "interconnect"),
    150: ("NVLink MSE error (NVLink5)", "interconnect"),
    154: ("GPU recovery action changed", "recovery_action"),
}

#: The NVLink errors of NVLink5 boards (Blackwell: B100, B200, GB200), which log these where
#: Hopper and Ampere log 74. NVIDIA's Xid catalog marks them FATAL with the NVLink5 error
#: workflow as the immediate action (149: reset the GPU), as 74 has the NVLink one.
NVLINK5_XIDS: tuple[int, ...] = (144, 145, 146, 147, 148, 149, 150)
#: Model names of the boards that can log :data:`NVLINK5_XIDS` (NVIDIA's names: "NVIDIA B200",
#: "NVIDIA GB200", "NVIDIA B300"...): only their counters of those codes are born at 0.
_NVLINK5_MODEL = re.compile(r"\bG?B[1-9]00\b")


@functools.lru_cache(maxsize=64)
def zero_born_xids(model: str) -> tuple[int, ...]:
    """The codes whose counters start at 0 on a board of ``model`` while XIDs are watched.

    Every catalogued code, except the NVLink5 ones on boards that cannot log them: seven
    counters per GPU that stay 0 on every Hopper or Ampere board would only add series.
    Cached: every scrape asks it for every GPU, and a fleet has a handful of model names.
    """
    if _NVLINK5_MODEL.search(model):
        return tuple(XID_CATALOGUE)
    return tuple(code for code in XID_CATALOGUE if code not in NVLINK5_XIDS)


#: Every value the ``class`` label can take ("other": a code outside the catalogue whose
#: message text names no known class).
XID_CLASSES: tuple[str, ...] = (
    "fallen_off_bus",
    "uncorrectable_ecc",
    "uncontained_ecc",
    "contained_ecc",
    "corrected_ecc",
    "row_remap",
    "interconnect",
    "gsp",
    "firmware",
    "timeout",
    "gpu_init",
    "recovery_action",
    "application",
    "other",
)

assert {cls for _, cls in XID_CATALOGUE.values()} <= set(XID_CLASSES)

#: Codes of the "application" class (13, 31, 32, 43, 45, 68, 69): raised by a job's own bug (an
#: MMU fault, a graphics exception), they say nothing about the GPU: neither its state
#: (gpu_health.telemetry.state) nor its failure risk (the scorer's "other" XID evidence) reads
#: them. dcgm-exporter's last-XID gauge holds one of them on most busy GPUs.
APPLICATION_XIDS: tuple[int, ...] = tuple(
    sorted(code for code, (_, cls) in XID_CATALOGUE.items() if cls == "application")
)

#: Codes after which the GPU cannot serve work until it is reset (79: until the node reboots):
#: NVIDIA's Xid catalog gives them a GPU reset or a reboot as the immediate action, and NVIDIA's
#: health-validation Xid checks drain the GPU for them (46 "GPU stopped processing": drain,
#: reset_gpu); 74 and the NVLink5 codes 144-150 have an NVLink error workflow that drains and
#: resets the GPUs on the link. One list for every consumer, because they disagreed: the
#: mixin paged "drain the GPU and reset it" for XID 46 while the scorer called the GPU degraded
#: and the economics said keep. From it the GPU state model calls the GPU ``failed``
#: (:mod:`gpu_health.telemetry.state_queries`), the default health policy caps its score, the
#: scorer's failure scan counts it (:mod:`gpu_health.scorer.labels`), and the mixin's critical
#: XID alerts page for exactly these codes (``tests/base/test_xid_agreement.py`` holds the four
#: together). Not in it: 94 (a contained ECC error: NVIDIA restarts the application, the GPU
#: keeps serving; the mixin warns, the health model penalises), 63 and 92 (precursors), the
#: application class, and 154 (it names its own recovery action).
RESET_REQUIRED_XIDS: tuple[int, ...] = (
    46, 48, 62, 64, 74, 79, 95, 109, 119, 120, 140, 143, *NVLINK5_XIDS
)  # fmt: skip

#: The label dcgm-exporter (3.3.6-3.4.2, May 2024, and every release since) puts the code of its
#: last-XID gauge ``DCGM_FI_DEV_XID_ERRORS`` in, beside ``err_msg``: every new code starts a new
#: series whose value (the code) never changes, so ``changes()`` is 0 on every series and an XID
#: is a series of a new code appearing. Earlier releases had one series whose value changed.
#: Every reader of the gauge matches series on (UUID, this label), which reads both shapes:
#: without the label it is matching on the UUID.
DCGM_XID_CODE_LABEL = "err_code"
#: dcgm-exporter's last-XID gauge under its two names, the older first: up to 4.8, and DCGM 4.6's
#: since 4.9 (:data:`~gpu_health.telemetry.catalogue.DCGM_RENAMED`, which holds the pair).
DCGM_XID_GAUGES: tuple[str, ...] = ("DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_XID_ERROR")

#: The per-code message label that comes with :data:`DCGM_XID_CODE_LABEL`.
DCGM_XID_MESSAGE_LABEL = "err_msg"

assert set(RESET_REQUIRED_XIDS) <= set(XID_CATALOGUE)

#: For codes outside the catalogue: the message text decides, first match wins (the driver's
#: own wording, e.g. "GPU has fallen off the bus.", "Uncontained: LTC TAG", "Row Remapper").
_TEXT_CLASSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"fallen off the bus", re.I), "fallen_off_bus"),
    (re.compile(r"\buncontained\b", re.I), "uncontained_ecc"),
    (re.compile(r"\bcontained\b", re.I), "contained_ecc"),
    (re.compile(r"double bit|\bDBE\b|uncorrectable", re.I), "uncorrectable_ecc"),
    (re.compile(r"row remap", re.I), "row_remap"),
    (re.compile(r"nvlink|\bC2C\b|\bLink \d{1,3}\b", re.I), "interconnect"),
    (re.compile(r"\bGSP\b"), "gsp"),
    (re.compile(r"timeout|timed out", re.I), "timeout"),
    (re.compile(r"MMU Fault|Exception", re.I), "application"),
)


def xid_label(code: int) -> str:
    """The ``xid`` label value of a code (``other`` outside ``1..MAX_XID_CODE``)."""
    return str(code) if 1 <= code <= MAX_XID_CODE else "other"


def bounded_code(code: int) -> int:
    """The key a code is counted under: itself, or :data:`XID_OTHER` when out of range."""
    return code if 1 <= code <= MAX_XID_CODE else XID_OTHER


def xid_class(code: int, text: str = "") -> str:
    """The class of an XID: from the catalogue by code, else from the message text."""
    known = XID_CATALOGUE.get(code)
    if known is not None:
        return known[1]
    for pattern, cls in _TEXT_CLASSES:
        if pattern.search(text):
            return cls
    return "other"
