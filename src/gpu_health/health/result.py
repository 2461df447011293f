"""What the health model returns for one GPU: the contract between the model and the exposition."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Dimension weights in the overall score (fixed by the product definition; sum to 1).
DIMENSIONS: tuple[str, ...] = ("thermal", "memory", "power", "performance", "reliability")
#: Grade bands from best to worst.
GRADES: tuple[str, ...] = ("excellent", "good", "fair", "poor", "critical")


@dataclass(frozen=True)
class Penalty:
    """Points a reason costs in one dimension (or a cap on the overall score)."""

    dimension: str
    reason: str
    points: float


@dataclass
class HealthResult:
    """Scores are 0 (dead) to 100 (perfect)."""

    overall: float
    dimensions: dict[str, float]
    grade: str
    penalties: list[Penalty] = field(default_factory=list)
