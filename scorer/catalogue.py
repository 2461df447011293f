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
    # The economic engine's decision inputs after defaults, one metric each, in base units
    # (scorer/econ/metrics.py maps the engine's input names to these).
    ("gpu_econ_age_seconds", "gauge", "Age of the GPU since purchase or installation.", ()),
    (
        "gpu_econ_utilisation_ratio",
        "gauge",
        "Billable utilisation the economic decision assumed, 0 to 1.",
        (),
    ),
    ("gpu_econ_power_watts", "gauge", "Average board power the economic decision assumed.", ()),
    (
        "gpu_econ_failure_probability_ratio",
        "gauge",
        "Failure probability within the horizon (7d, 30d) the economic decision used.",
        ("horizon",),
    ),
    (
        "gpu_econ_monthly_hazard_ratio",
        "gauge",
        "Probability of failure within a month the economic decision used.",
        (),
    ),
    (
        "gpu_econ_health_score",
        "gauge",
        "Health score (0-100) the economic decision used for the resale price.",
        (),
    ),
    (
        "gpu_econ_hard_fault",
        "gauge",
        "1 if the economic decision treated the GPU as out of service (hard fault), else 0.",
        (),
    ),
    (
        "gpu_econ_rental_price_per_hour",
        "gauge",
        "Rental price of one GPU-hour of the GPU's model, in the currency label's unit.",
        ("currency",),
    ),
    (
        "gpu_econ_energy_price_per_kwh",
        "gauge",
        "Energy price per kWh, in the currency label's unit.",
        ("currency",),
    ),
    (
        "gpu_scorer_risk_factor_info",
        "gauge",
        "1 for each feature among the risk factors, with its meaning in words (label).",
        ("feature", "label"),
    ),
    (
        "gpu_scorer_model_reload_errors_total",
        "counter",
        "New models refused at reload (missing, truncated, altered); the last good one is kept.",
        (),
    ),
)

#: Identity labels the scorer puts on per-GPU series (the same names as the exporter's).
SCORER_IDENTITY_LABELS: tuple[str, ...] = ("node", "gpu", "uuid", "model")
