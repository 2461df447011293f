"""What a fleet report holds, independent of how it is gathered or shown."""

from __future__ import annotations

from dataclasses import dataclass, field

#: The most rows of each long list a rendering shows; a cut list ends with a line saying how
#: many rows were left out and where to see them.
TEXT_ROWS = {"unhealthy": 40, "xids": 30, "alerts": 40}
HTML_ROWS = {"unhealthy": 200, "xids": 100, "alerts": 200}

ACTIONS = ("keep", "repair", "repurpose", "sell", "decommission")
GRADES = ("excellent", "good", "fair", "poor", "critical")


@dataclass
class RiskRow:
    """One GPU in the risk ranking."""

    uuid: str
    node: str
    model: str
    gpu: str
    p7: float | None = None
    p30: float | None = None
    health: float | None = None
    factors: list[tuple[str, float]] = field(default_factory=list)
    action: str | None = None
    npv: dict[str, float] = field(default_factory=dict)
    residual_value: float | None = None
    #: healthy, degraded, failed or absent (gpu_health.telemetry.state)
    state: str = "healthy"
    #: the scorer's most likely failure class (gpu_failure_class_probability), its share of
    #: the hazard, and the class's runbook URL ("" for a class this version does not know)
    failure_class: str | None = None
    failure_class_probability: float | None = None
    runbook_url: str = ""
    #: Why the scorer's economics did not value the GPU ("no economics for model X"); "" when
    #: it was valued, or when nothing says why it has no action (no economics running).
    not_valued: str = ""


@dataclass
class XidRow:
    node: str
    uuid: str
    xid: str
    count: float


@dataclass
class StateRow:
    """A GPU that is not healthy: its state, why, and for how long it has been silent."""

    node: str
    gpu: str
    uuid: str
    state: str
    reasons: tuple[str, ...]
    age_s: float
    last_state: str = ""


@dataclass
class AlertRow:
    alertname: str
    severity: str
    node: str
    uuid: str
    firing_now: bool


@dataclass
class AccuracyRow:
    """How past flags of one horizon turned out over one rolling window (gpu-health-scorer
    outcomes); a figure the scorer could not compute (no flags, no failures) is None."""

    horizon: str
    window: str
    precision: float | None = None
    recall: float | None = None
    lead_days: float | None = None
    true_positive: int | None = None
    false_positive: int | None = None
    false_negative: int | None = None


@dataclass
class FleetReport:
    prometheus: str
    generated_at: float
    period: str
    schema: str
    #: Why this schema was read (most GPUs, or --schema), and the query engine.
    schema_reason: str = ""
    engine: str = "prometheus"
    currency: str = "USD"
    gpu_count: int = 0
    grades: dict[str, int] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)
    #: the riskiest GPUs (--top of them), and how many GPUs the ranking had in all
    risks: list[RiskRow] = field(default_factory=list)
    risk_count: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    npv_by_action: dict[str, float] = field(default_factory=dict)
    fleet_residual_value: float | None = None
    #: GPUs the scorer's economics did not value, per model (no economics entry for it)
    unvalued: dict[str, int] = field(default_factory=dict)
    #: GPUs per state, and the GPUs that are not healthy (failed first)
    states: dict[str, int] = field(default_factory=dict)
    unhealthy: list[StateRow] = field(default_factory=list)
    xids: list[XidRow] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)
    #: name -> [(unix time, value)]
    trends: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    #: live accuracy of past flags per horizon and window, or why there is none
    accuracy: list[AccuracyRow] = field(default_factory=list)
    accuracy_note: str = ""
    #: sections that could not be filled, and why
    notes: list[str] = field(default_factory=list)
    #: ready-made HTML sections from other parts (fleet planning), shown before the notes
    extra_html: list[str] = field(default_factory=list)
