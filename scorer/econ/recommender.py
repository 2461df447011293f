"""Hysteresis over recommendations, so an action changes only when the new one clearly pays more.

NPVs move a little every scoring run (utilisation, power and failure probabilities are measured);
without hysteresis a GPU near a break-even would flip between keep and sell every few minutes and
every flip would page someone or start a drain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from gpu_health.scorer.econ.engine import EconResult
from gpu_health.scorer.econ.params import Hysteresis


def required_lead(current_npv: float, hysteresis: Hysteresis) -> float:
    """How much more the challenger must be worth: both the absolute and relative margins."""
    return max(hysteresis.absolute, hysteresis.relative * abs(current_npv))


class Recommender:
    """Keeps the current action per GPU (by uuid) and switches only beyond the margin.

    A switch happens when the best action's NPV exceeds the current action's by more than
    :func:`required_lead`, or at once when the current action is no longer allowed (a hard fault
    ends ``keep`` without waiting).
    """

    def __init__(self, hysteresis: Hysteresis) -> None:
        self.hysteresis = hysteresis
        self._current: dict[str, str] = {}

    def recommend(self, result: EconResult) -> EconResult:
        current = self._current.get(result.uuid)
        chosen = result.best_action
        if current is not None and current in result.eligible and current != chosen:
            lead = result.npv[chosen] - result.npv[current]
            if lead <= required_lead(result.npv[current], self.hysteresis):
                chosen = current
        self._current[result.uuid] = chosen
        return dataclasses.replace(result, recommended_action=chosen)

    def recommend_all(self, results: Iterable[EconResult]) -> list[EconResult]:
        """Recommend for a whole run; GPUs absent from it are forgotten."""
        out = [self.recommend(r) for r in results]
        seen = {r.uuid for r in out}
        for uuid in list(self._current):
            if uuid not in seen:
                del self._current[uuid]
        return out

    def current(self, uuid: str) -> str | None:
        return self._current.get(uuid)
