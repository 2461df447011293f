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
    # Asset inventory (scorer/inventory, docs/inventory.md).
    (
        "gpu_asset_info",
        "gauge",
        "Where the GPU sits and who owns it, from the asset inventory; always 1.",
        ("datacenter", "row", "rack", "team", "sla_tier"),
    ),
    ("gpu_age_seconds", "gauge", "Time since the GPU's purchase date (asset inventory).", ()),
    (
        "gpu_warranty_remaining_seconds",
        "gauge",
        "Time until the GPU's warranty ends; negative once it has ended (asset inventory).",
        (),
    ),
    (
        "gpu_market_price",
        "gauge",
        "Market price of a card of the model from the user's price table; date = the quote's "
        "date (fleet-level: no GPU identity labels).",
        ("condition", "date", "currency"),
    ),
    (
        "gpu_scorer_inventory_records",
        "gauge",
        "Records in the asset inventory in use (0: none loaded, the defaults apply).",
        (),
    ),
    (
        "gpu_scorer_inventory_unknown_gpus",
        "gauge",
        "Scored GPUs the inventory does not list (they get the defaults).",
        (),
    ),
    (
        "gpu_scorer_inventory_reload_errors_total",
        "counter",
        "Inventory files refused at reload (invalid); the last good one is kept.",
        (),
    ),
    # Fleet planning (scorer/planning): fleet-level series, no GPU identity labels.
    (
        "gpu_plan_expected_failures",
        "gauge",
        "Failures to expect within the horizon in the group: sum of failure probabilities.",
        ("horizon", "dimension", "group"),
    ),
    (
        "gpu_plan_failures_interval",
        "gauge",
        "Central 80 % interval of the group's failure count within the horizon (exact "
        "Poisson-binomial); bound = lower or upper.",
        ("horizon", "dimension", "group", "bound"),
    ),
    (
        "gpu_plan_spares",
        "gauge",
        "Spares to stock so the group runs out within the horizon with probability at most "
        "1 - service_level.",
        ("horizon", "dimension", "group", "service_level"),
    ),
    (
        "gpu_plan_capacity_at_risk_gpu_hours",
        "gauge",
        "Expected GPU-hours out of service from failures within the horizon in the group.",
        ("horizon", "dimension", "group"),
    ),
)

#: Identity labels the scorer puts on per-GPU series (the same names as the exporter's).
SCORER_IDENTITY_LABELS: tuple[str, ...] = ("node", "gpu", "uuid", "model")
