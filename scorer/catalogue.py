"""Names of the series the scorer publishes: the contract with the mixin, dashboards and report."""

from __future__ import annotations

#: (name, type, help, labels beyond the GPU identity labels)
SCORER_METRICS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "gpu_failure_probability",
        "gauge",
        "Probability that the GPU fails within the horizon (7d, 30d, 90d), from one survival "
        "curve: never lower at a longer horizon.",
        ("horizon",),
    ),
    (
        "gpu_time_to_failure_seconds",
        "gauge",
        "Time to failure at quantile 0.1, 0.5 and 0.9 of the survival curve (0.1..0.9: an 80 % "
        "interval).",
        ("quantile",),
    ),
    (
        "gpu_failure_class_probability",
        "gauge",
        "Most likely failure class (memory, bus, nvlink, thermal_power, other) and its "
        "probability.",
        ("class",),
    ),
    (
        "gpu_failure_risk_factor",
        "gauge",
        "Contribution of a feature to the failure log-odds (XGBoost SHAP value), top features.",
        ("horizon", "feature"),
    ),
    (
        "gpu_risk_rank",
        "gauge",
        "Place of the GPU in the scorer's ranking at the horizon (1 = first): failed, absent, "
        "degraded, then healthy GPUs, by failure probability within a state, ties by uuid. "
        "Select the riskiest N with gpu_risk_rank <= N: unlike topk(), the same GPUs on every "
        "query engine and in every panel.",
        ("horizon",),
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
        "1 on the recommended action (keep, repair, repurpose, sell, decommission), 0 on others.",
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
        "Failure probability within the horizon (7d, 30d, 90d) the economic decision read.",
        ("horizon",),
    ),
    (
        "gpu_econ_monthly_hazard_ratio",
        "gauge",
        "Expected failures per month the economic decision used (from the 30d/90d survival curve).",
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
        "gpu_econ_purchase_price",
        "gauge",
        "Purchase price the valuation started from (inventory, else the model's list price).",
        ("currency",),
    ),
    (
        "gpu_econ_warranty_remaining_seconds",
        "gauge",
        "Warranty left when valued (negative once expired); absent without an inventory date.",
        (),
    ),
    (
        "gpu_econ_sla_penalty",
        "gauge",
        "SLA penalty owed per failure on top of lost revenue, in the currency label's unit.",
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
        "gpu_scorer_econ_unvalued_gpus",
        "gauge",
        "Scored GPUs the economics did not value (no NPV, no recommended action): no model entry "
        "of the economics parameters matches their model.",
        ("model",),
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

SCORER_METRICS += (
    (
        "gpu_state",
        "gauge",
        "1 on the GPU's state (healthy, degraded, failed, absent, replaced), 0 on the others.",
        ("state",),
    ),
    (
        "gpu_state_age_seconds",
        "gauge",
        "Seconds since the GPU's last sample (0 while it reports; grows while absent).",
        (),
    ),
    (
        "gpu_scorer_bad_values_total",
        "counter",
        "Feature values the model cannot take (not finite in float32), made missing for that "
        "GPU and feature instead of failing the run.",
        ("feature",),
    ),
    (
        "gpu_scorer_run_state",
        "gauge",
        "1 for the scoring loop's state: idle, running, ok, failed, timed_out (last run abandoned "
        "at --run.budget) or stuck (a run still going past its budget).",
        ("state",),
    ),
    (
        "gpu_scorer_history_source",
        "gauge",
        "1 for the history the last run read: raw (the scraped series), recorded (their "
        "5-minute samples from the gpu-health-scorer-history.rules group), hourly (their hourly "
        "samples from gpu-health-scorer-hourly.rules for windows of 7 days or more, raw for the "
        "rest) or recorded+hourly (both; --history).",
        ("source",),
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
