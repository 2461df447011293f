"""The five-dimension health model: score, grade and the penalties that explain it.

Entry points: :func:`~gpu_health.health.policy.load_policy` (YAML policy, shipped
defaults when no path is given), :class:`~gpu_health.health.model.HealthTracker`
(stateful, one per exporter) and :func:`~gpu_health.health.model.score_sample`
(one-shot). See docs/health-model.md.
"""
