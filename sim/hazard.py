"""Failure modes, their rates per GPU-year, precursors and lead times — and the draw of failures.

Every number here comes from published fleet studies, cited one by one in docs/simulator.md:
Meta's Llama 3 report (arXiv 2407.21783, Table 5: H100 interruptions per category), NCSA Delta
(Cui et al., arXiv 2503.11901: A100/GH200 uncorrectable-memory and row-remap-failure rates), Summit
(Oles et al., ICS 2024: DBE streaks) and Titan (Ostrouchov et al., SC20: lifetimes and removals),
with NVIDIA's XID catalogue for the terminal signals. Rates are *population averages*: the lemon and
SBE-active cohorts multiply a GPU's hazard, so base rates are divided by the cohort-weighted mean
multiplier to keep the fleet average on the reference value. Ageing follows a Weibull hazard in
board age with shape ``AGEING_SHAPE`` normalised to the reference rate at ``AGEING_REF_YEARS``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

YEAR = 365.25 * 86400.0
DAY = 86400.0
HOUR = 3600.0


@dataclass(frozen=True)
class FailureMode:
    """One way a GPU fails: how often, whether and how long before it shows, what it emits."""

    name: str
    #: events per GPU-year by model key ("*" = default)
    rates: dict[str, float]
    #: probability the failure has a visible precursor, by model key ("*" = default)
    p_precursor: dict[str, float]
    #: lognormal lead time (precursor onset -> failure): median seconds and sigma of ln
    lead_median: float
    lead_sigma: float
    #: probability the failure ends in an RMA (board replaced), by model key
    p_rma: dict[str, float]
    memory: bool
    #: the GPU falls off the bus at the failure (metrics vanish, gpu_up 0)
    lost: bool
    #: XID codes emitted at the failure, in order (a choice list picks one of the alternatives)
    xids: tuple[tuple[int, ...], ...]

    def rate(self, model: str) -> float:
        return self.rates.get(model, self.rates["*"])

    def precursor_probability(self, model: str) -> float:
        return self.p_precursor.get(model, self.p_precursor["*"])

    def rma_probability(self, model: str) -> float:
        return self.p_rma.get(model, self.p_rma["*"])


MODES: tuple[FailureMode, ...] = (
    FailureMode(
        "hbm_uncorrectable",
        rates={"*": 0.05, "a100": 0.03, "l40s": 0.02},
        p_precursor={"*": 0.5, "a100": 0.7},
        lead_median=3 * DAY,
        lead_sigma=1.5,
        p_rma={"*": 0.25, "a100": 0.05},
        memory=True,
        lost=False,
        xids=((48,), (94, 95), (63,)),
    ),
    FailureMode(
        "sram_uncorrectable",
        rates={"*": 0.008},
        p_precursor={"*": 0.3},
        lead_median=1 * DAY,
        lead_sigma=1.5,
        p_rma={"*": 0.5},
        memory=True,
        lost=False,
        xids=((48,), (94, 95)),
    ),
    FailureMode(
        "fell_off_bus",
        rates={"*": 0.020},
        p_precursor={"*": 0.25},
        lead_median=12 * HOUR,
        lead_sigma=1.5,
        p_rma={"*": 0.5},
        memory=False,
        lost=True,
        xids=((79,),),
    ),
    FailureMode(
        "power_delivery",
        rates={"*": 0.005},
        p_precursor={"*": 0.5},
        lead_median=2 * DAY,
        lead_sigma=1.2,
        p_rma={"*": 0.5},
        memory=False,
        lost=True,
        xids=((62,), (79,)),
    ),
    FailureMode(
        "nvlink",
        rates={"*": 0.018, "l40s": 0.0},
        p_precursor={"*": 0.5},
        lead_median=2 * DAY,
        lead_sigma=1.2,
        p_rma={"*": 0.3},
        memory=False,
        lost=False,
        xids=((74,),),
    ),
    FailureMode(
        "hang",
        rates={"*": 0.018},
        p_precursor={"*": 0.1},
        lead_median=1 * DAY,
        lead_sigma=1.5,
        p_rma={"*": 0.2},
        memory=False,
        lost=False,
        xids=((46, 62, 109), (154,)),
    ),
    FailureMode(
        "gsp_firmware",
        rates={"*": 0.007},
        p_precursor={"*": 0.0},
        lead_median=1 * DAY,
        lead_sigma=1.5,
        p_rma={"*": 0.1},
        memory=False,
        lost=False,
        xids=((119, 120), (154,)),
    ),
    FailureMode(
        "thermal",
        rates={"*": 0.003},
        p_precursor={"*": 0.9},
        lead_median=14 * DAY,
        lead_sigma=0.8,
        p_rma={"*": 0.3},
        memory=False,
        lost=True,
        xids=(),
    ),
    FailureMode(
        "sdc",
        rates={"*": 0.0025},
        p_precursor={"*": 0.0},
        lead_median=1 * DAY,
        lead_sigma=1.0,
        p_rma={"*": 1.0},
        memory=False,
        lost=False,
        xids=(),
    ),
)
MODE_BY_NAME: dict[str, FailureMode] = {m.name: m for m in MODES}
#: Modes whose precursor (when drawn) is visible in telemetry.
PRECURSOR_MODES: frozenset[str] = frozenset(
    m.name for m in MODES if max(m.p_precursor.values()) > 0
)

# Heterogeneity (§5(a) "Heterogeneity"): cohort shares and hazard multipliers.
LEMON_SHARE = 0.01
LEMON_MEMORY_MULT = 20.0
LEMON_OTHER_MULT = 5.0
SBE_ACTIVE_SHARE = 0.05
SBE_ACTIVE_MEMORY_MULT = 2.0
#: after an uncorrectable memory event, memory hazard x30 decaying over 30 days (Summit streaks)
REPEAT_MULT = 30.0
REPEAT_TAU = 30 * DAY
# Ageing: Weibull shape in board age; 1.0 would be the reference's constant hazard (Titan healthy
# batch k = 1.02); a mild 1.2 makes older boards riskier, normalised at 2 years of service.
AGEING_SHAPE = 1.2
AGEING_REF_YEARS = 2.0
# Repair: reset/reboot lognormal median 30 min (15 min - 2 h); RMA turnaround 7-30 days.
RESET_MEDIAN = 30 * 60.0
RESET_SIGMA = 0.6
RMA_MIN = 7 * DAY
RMA_MAX = 30 * DAY
#: a failing GPU stays visible this long after the XID (drain) before the reset takes it down
DRAIN_SECONDS = 10 * 60.0
MIN_LEAD = 30 * 60.0

_MEM_NORM = (
    1.0 + LEMON_SHARE * (LEMON_MEMORY_MULT - 1) + SBE_ACTIVE_SHARE * (SBE_ACTIVE_MEMORY_MULT - 1)
)
_OTHER_NORM = 1.0 + LEMON_SHARE * (LEMON_OTHER_MULT - 1)


@dataclass(frozen=True)
class Cohort:
    lemon: bool
    sbe_active: bool

    def multiplier(self, mode: FailureMode) -> float:
        """The board's hazard multiplier for ``mode`` (population mean 1)."""
        if mode.memory:
            m = LEMON_MEMORY_MULT if self.lemon else 1.0
            m *= SBE_ACTIVE_MEMORY_MULT if self.sbe_active else 1.0
            return m / _MEM_NORM
        return (LEMON_OTHER_MULT if self.lemon else 1.0) / _OTHER_NORM


_MEM_SECOND_MOMENT = (
    (1 - LEMON_SHARE - SBE_ACTIVE_SHARE)
    + SBE_ACTIVE_SHARE * SBE_ACTIVE_MEMORY_MULT**2
    + LEMON_SHARE * LEMON_MEMORY_MULT**2
) / _MEM_NORM**2


def primary_rate(mode: FailureMode, model: str) -> float:
    """The first-event rate that, with the repeat streaks it triggers, averages the reference rate.

    Repeats add ``c * r`` events per primary event at rate ``r`` (c from the x30/30-day streak and
    the cohort spread), so solve ``r * (1 + c * r) = R`` for memory modes.
    """
    target = mode.rate(model)
    if not mode.memory or target <= 0:
        return target
    c = REPEAT_MULT * REPEAT_TAU / YEAR * _MEM_SECOND_MOMENT
    return (-1.0 + math.sqrt(1.0 + 4.0 * c * target)) / (2.0 * c)


def reference_rate(model: str) -> float:
    """Failures per GPU-year of ``model`` over all modes (the fleet average, repeats included)."""
    return sum(m.rate(model) for m in MODES)


def draw_cohort(rng: random.Random) -> Cohort:
    u = rng.random()
    return Cohort(
        lemon=u < LEMON_SHARE, sbe_active=LEMON_SHARE <= u < LEMON_SHARE + SBE_ACTIVE_SHARE
    )


def _cumulative(rate: float, age: float) -> float:
    """Cumulative hazard H(age) of a Weibull normalised to ``rate``/yr at the reference age."""
    a = max(age, 0.0) / YEAR
    k = AGEING_SHAPE
    return float(rate * AGEING_REF_YEARS / k * (a / AGEING_REF_YEARS) ** k)


def _inverse(rate: float, h: float) -> float:
    k = AGEING_SHAPE
    return float(AGEING_REF_YEARS * (h * k / (rate * AGEING_REF_YEARS)) ** (1.0 / k) * YEAR)


def next_failure_age(rate: float, age: float, rng: random.Random) -> float:
    """Age (s) of the next event of a process with Weibull hazard, given none before ``age``."""
    if rate <= 0:
        return math.inf
    return _inverse(rate, _cumulative(rate, age) + rng.expovariate(1.0))


@dataclass(frozen=True)
class Draw:
    """One failure as drawn by the hazard model (before any telemetry)."""

    mode: str
    age: float
    repeat: bool


def draw_board_failures(
    model: str,
    cohort: Cohort,
    age_from: float,
    age_to: float,
    rng: random.Random,
    hazard_scale: float = 1.0,
    modes: Sequence[FailureMode] = MODES,
) -> list[Draw]:
    """All failures of one board between two ages, ignoring downtime (it is short vs a year).

    Each mode is an independent Weibull process; after an uncorrectable memory event the memory
    hazard jumps x30 and decays over 30 days, which adds the streaks of repeat events.
    """
    draws: list[Draw] = []
    for mode in modes:
        rate = primary_rate(mode, model) * cohort.multiplier(mode) * hazard_scale
        age = age_from
        while True:
            age = next_failure_age(rate, age, rng)
            if age >= age_to:
                break
            draws.append(Draw(mode.name, age, False))
            if mode.memory:
                expected = rate / YEAR * REPEAT_MULT * REPEAT_TAU
                for _ in range(_poisson(expected, rng)):
                    repeat_age = age + rng.expovariate(1.0 / REPEAT_TAU)
                    if repeat_age < age_to:
                        draws.append(Draw(mode.name, repeat_age, True))
    draws.sort(key=lambda d: d.age)
    return draws


def _poisson(mean: float, rng: random.Random) -> int:
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def lead_time(mode: FailureMode, rng: random.Random) -> float:
    return max(MIN_LEAD, mode.lead_median * math.exp(mode.lead_sigma * rng.gauss(0.0, 1.0)))


@dataclass
class HazardSummary:
    gpu_years: float
    events: int
    by_mode: dict[str, int]
    with_precursor: int

    @property
    def rate(self) -> float:
        return self.events / self.gpu_years


def simulate_hazard(
    gpu_years: float, model: str, seed: int = 0, years_per_board: float = 1.0
) -> HazardSummary:
    """Failure counts over many GPU-years without telemetry: the check on rates and mode mix.

    Boards are observed for ``years_per_board`` starting at ages spread over 0-3 years, like a
    fleet bought over three years, so ageing averages out near the reference; precursor
    presence is drawn exactly as the telemetry simulator draws it.
    """
    rng = random.Random(seed)
    boards = max(1, int(gpu_years / years_per_board))
    by_mode: dict[str, int] = {m.name: 0 for m in MODES}
    with_precursor = 0
    for _ in range(boards):
        cohort = draw_cohort(rng)
        start = rng.uniform(0.0, 3.0) * YEAR
        for d in draw_board_failures(model, cohort, start, start + years_per_board * YEAR, rng):
            by_mode[d.mode] += 1
            if rng.random() < MODE_BY_NAME[d.mode].precursor_probability(model):
                with_precursor += 1
    total = sum(by_mode.values())
    return HazardSummary(boards * years_per_board, total, by_mode, with_precursor)
