"""Names of the series the scorer publishes: the contract with the mixin, dashboards and report."""

from __future__ import annotations

#: (name, type, help, labels beyond the GPU identity labels)
SCORER_METRICS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "gpu_failure_probability",
        "gauge",
        "Calibrated probability that the GPU fails within the horizon (7d, 30d).",
        ("horizon",),
    ),
    (
        "gpu_failure_risk_factor",
        "gauge",
        "Contribution of a feature to the failure log-odds (XGBoost SHAP value), top features.",
        ("horizon", "feature"),
    ),
    (
        "gpu_anomaly_score",
        "gauge",
        "Isolation-forest anomaly score, 0 (typical) to 1 (unusual).",
        (),
    ),
    (
        "gpu_residual_value",
        "gauge",
        "Residual (book) value of the GPU adjusted by health.",
        ("currency",),
    ),
    ("gpu_npv", "gauge", "Net present value of each course of action.", ("action", "currency")),
    (
        "gpu_recommended_action",
        "gauge",
        "1 on the recommended action (keep, sell, repurpose, decommission), 0 on the others.",
        ("action",),
    ),
    ("gpu_scorer_last_run_timestamp_seconds", "gauge", "Unix time the last scoring run ended.", ()),
    ("gpu_scorer_run_duration_seconds", "gauge", "Wall time of the last scoring run.", ()),
    ("gpu_scorer_gpus_scored", "gauge", "GPUs scored in the last run.", ()),
    ("gpu_scorer_query_errors_total", "counter", "Prometheus queries that failed.", ()),
    ("gpu_scorer_results_age_seconds", "gauge", "Age of the results being served.", ()),
    (
        "gpu_scorer_runs_failed_total",
        "counter",
        "Scoring runs that failed (Prometheus unreachable); the previous results stay served.",
        (),
    ),
    (
        "gpu_econ_input",
        "gauge",
        "Input to the economic decision (utilisation, power_w, p7, p30, monthly_hazard, health, "
        "hard_fault, age_days, rental_rate, energy_price) after defaults were applied.",
        ("input",),
    ),
    (
        "gpu_scorer_model_reload_errors_total",
        "counter",
        "New models refused at reload (missing, truncated, altered); the last good one is kept.",
        (),
    ),
)

#: Written by ``gpu-health-scorer outcomes`` (live accuracy, not per GPU): (name, type, help,
#: labels). Read by the GPUScorerPrecisionLow alert.
OUTCOME_METRICS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "gpu_prediction_outcomes",
        "gauge",
        "GPU-time rows of past predictions by outcome against the failure ledger.",
        ("horizon", "outcome", "window"),
    ),
    (
        "gpu_prediction_precision",
        "gauge",
        "Share of flagged GPU-time rows that failed within the horizon.",
        ("horizon", "window"),
    ),
    (
        "gpu_prediction_recall",
        "gauge",
        "Share of failing GPU-time rows that were flagged.",
        ("horizon", "window"),
    ),
    (
        "gpu_prediction_lead_time_days",
        "gauge",
        "Median days between the first flag and the failure.",
        ("horizon", "window"),
    ),
)

#: Identity labels the scorer puts on per-GPU series (the same names as the exporter's).
SCORER_IDENTITY_LABELS: tuple[str, ...] = ("node", "gpu", "uuid", "model")
