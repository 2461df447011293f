// Every knob a fleet may need to tune, with the reason to change it.
{
  _config+:: {
    // Selectors are inserted between {} in every query. Change them to the job names your
    // scrape configuration gives the exporter and the scorer sidecar.
    gpuExporterSelector: 'job="gpu-health-exporter"',
    gpuScorerSelector: 'job="gpu-health-scorer"',

    // The scorer is optional: set false when you run the exporter alone, so no scorer alert
    // (failure predicted, retirement recommended, scorer down) or scorer rule is rendered.
    scorerEnabled: true,

    // Labels that identify one GPU on every per-GPU series (exporter contract). Aggregations
    // remove these (plus the scrape `instance`) to get node, model and fleet levels, and keep
    // everything else (job, cluster and other external labels survive).
    gpuLabels: ['gpu', 'uuid', 'pci_bus_id'],
    nodeLabel: 'node',
    modelLabel: 'model',

    // Window for rate()/avg_over_time() in recording rules; part of the rule names.
    // Must be at least 4 scrape intervals.
    rateInterval: '5m',
    // Window in which XID events count as "recent" (the XID increase recording rules and
    // dashboards); part of the XID rule names. The XID alerts do not use it: they are latched
    // on the exporter's count and resolve only when that count restarts at zero.
    xidWindow: '10m',

    // How long a vanished GPU is remembered by GPUMetricsAbsent. Longer catches GPUs that
    // disappear across a node reboot; shorter forgets GPUs you removed on purpose sooner.
    gpuAbsentLookback: '6h',
    // The label naming a GPU's physical slot on its node: a GPU that answers from the same node
    // and slot as a silent one is its replacement (or the board back under a new uuid), so the
    // silent one no longer counts as missing. The PCI bus id, not the `gpu` index: indices
    // shift when a GPU drops out of the driver's enumeration.
    gpuSlotLabel: 'pci_bus_id',
    // How far back a GPU slot counts as "expected" for exporter coverage (the dashboards'
    // coverage panels and the slot record that feeds them). Longer keeps a GPU that vanished
    // counted as missing for longer; part of the slot record's name.
    coverageLookback: '1d',
    // Labels of gpu_info beyond the identity labels (versions and serial): the slot record
    // drops them with the GPU's own labels, so an upgrade or a new board is still one slot.
    gpuInfoLabels: ['serial', 'vbios_version', 'driver_version', 'cuda_driver_version'],

    // Severities; demote `criticalSeverity` to 'warning' on fleets where nothing should page.
    criticalSeverity: 'critical',
    warningSeverity: 'warning',
    // Alerts that only feed Alertmanager's inhibition (GPUMassFailureMember) and must never
    // notify: the shipped alertmanager.yml routes this severity to "null".
    infoSeverity: 'info',

    // XID classes, grouped by the "immediate action" NVIDIA's Xid catalog gives each code
    // (docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html). Application-level codes
    // (RESTART_APP: 8, 13, 31, 32, 43, 68, 69) are deliberately absent: the job owner acts on
    // them, not the fleet operator. XID 79 (RESTART_BM) is GPUFallenOffBus. A code may be in
    // one class only (the generator checks).
    xidClasses: [
      {
        alert: 'GPUXidResetRequired',
        codes: [46, 62, 64, 95, 109, 119, 120, 140, 143],
        severity: 'critical',
        'for': '0m',
        action: 'drain the GPU and reset it (nvidia-smi -r); if the XID repeats after the reset, open a support case',
      },
      {
        alert: 'GPUXidMemoryError',
        codes: [48],
        severity: 'critical',
        'for': '0m',
        action: 'drain the GPU and reset it to clear the uncorrectable ECC error; check row remapping afterwards',
      },
      {
        alert: 'GPUXidNvlinkError',
        codes: [74, 144, 145, 146, 147, 148, 149, 150],
        severity: 'critical',
        'for': '0m',
        action: 'drain the node, reset the GPUs on the link (or reboot); a repeat after reset needs the vendor',
      },
      {
        alert: 'GPUXidContainedEccError',
        codes: [94],
        severity: 'warning',
        'for': '0m',
        action: 'the affected job was stopped; reset the GPU at the next maintenance window',
      },
    ],

    // GPUFallenOffBus: an XID 79 with gpu_up == 0 is definitive; `for` only rides out a
    // single bad reading. Without an XID (the event was missed), gpu_up must stay 0 for
    // gpuLostFor first.
    gpuFallenOffBusFor: '1m',
    gpuLostFor: '2m',
    // GPUMassFailure: at least this many GPUs that stopped answering within massFailureWindow
    // of each other (fallen off the bus, or on an exporter that went down) are one event with
    // a shared cause (power, network, cooling, a driver roll-out): one page instead of one per
    // GPU (a 1,000-GPU outage sent 1,000 PagerDuty incidents). A GPU counts in the burst while
    // it is down now and answered at some point in the window, so a trickle of unrelated losses
    // (one every 15 minutes) never adds up to a burst. The alert fires while such a burst
    // reached massFailureGpus within the last massFailureHold and at least massFailureGpus GPUs
    // are still down; Alertmanager holds the "down" pages of the burst's members
    // (GPUMassFailureMember: the GPUs and exporters counted in it) while it fires, so
    // massFailureHold bounds how long the outage mutes them (after it, every member still down
    // pages on its own); a loss outside the burst pages at once.
    massFailureGpus: 32,
    massFailureWindow: '30m',
    massFailureHold: '4h',
    massFailureFor: '1m',
    // Hard faults (lost GPU, uncorrectable errors, failed remap, XIDs) are latched: their last
    // reading within this window counts, so a scrape gap shorter than it neither resolves nor
    // re-pages them. They resolve when the GPU answers again, its counters restart at zero
    // (reset, exporter restart) or its uuid changes (replaced).
    hardFaultGapTolerance: '10m',
    // GPUMetricsAbsent: a GPU that was there and is gone (not even gpu_up == 0).
    gpuAbsentFor: '10m',

    // Row remap pending (a latched flag): long enough to ride out one odd reading.
    rowRemapPendingFor: '1m',

    // Throttle alerts: fraction of scrapes in rateInterval with the reason active.
    thermalSlowdownReasons: 'hw_thermal_slowdown|sw_thermal_slowdown',
    thermalSlowdownRatio: 0.1,
    // The share over rateInterval is already persistent, so `for` only rides out one
    // evaluation (every fault is to be detected within five minutes of its onset).
    thermalSlowdownFor: '1m',
    powerBrakeRatio: 0,
    // Share of rateInterval the board-limit violation counter (hardware slowdown inputs such
    // as the power brake) held clocks down; healthy boards stay at zero.
    boardLimitRatio: 0.05,
    powerBrakeFor: '1m',
    // Clock-event reasons that are not throttling (idle, user clock settings): excluded from
    // the throttle-fraction rules.
    benignClockEventReasons: 'gpu_idle|applications_clocks_setting|display_clock_setting',

    // PCIe replays per minute. 31/min is the bit-error budget of a Gen5 x16 link at BER 1e-12
    // (DCGM GetExpectedPcieReplayRate); lower it for Gen4 (16/min).
    pcieReplaysPerMinuteThreshold: 31,
    pcieReplayFor: '1m',

    // NVLink: CRC errors matter at 100+ per second (DCGM hardware limits); replay and recovery
    // errors above this many per minute over rateInterval (an isolated replay is recovered by
    // the link layer and stays below it).
    nvlinkCrcErrorsPerSecondThreshold: 100,
    nvlinkReplaysPerMinuteThreshold: 1,
    nvlinkErrorsFor: '1m',

    // Corrected (single-bit) ECC errors per minute over rateInterval that make a storm. A
    // project choice: the simulator's benign bursts are tens of errors (median 30), its storms
    // hundreds a minute; tune it to your fleet's corrected-error baseline.
    eccCorrectedPerMinuteThreshold: 100,
    eccStormFor: '0m',
    // A storm comes in bursts: it stays firing until no 5m window of this long was above the
    // floor (a lull between bursts does not resolve it).
    eccStormHold: '15m',

    // Health score (0-100) thresholds on the overall dimension.
    healthDegradedThreshold: 60,
    healthDegradedFor: '30m',
    healthCriticalThreshold: 30,
    healthCriticalFor: '10m',

    // Failure model: alert when the calibrated probability of failure within the horizon
    // exceeds the threshold for failurePredictedFor (the model reruns every few minutes).
    failurePredictedHorizon: '7d',
    failurePredictedThreshold: 0.3,
    failurePredictedFor: '1h',
    // The runbook (an alert name, through runbookURLPattern) GPUFailurePredicted links for each
    // failure class the scorer names; the same map as RUNBOOKS in scorer/rules.py.
    failureClassRunbooks: {
      memory: 'GPUXidMemoryError',
      bus: 'GPUFallenOffBus',
      nvlink: 'GPUNvlinkErrors',
      thermal_power: 'GPUThermalSlowdown',
      other: 'GPUFailurePredicted',
    },
    // Live accuracy (gpu-health-scorer outcomes, docs/closed-loop.md): alert when the share of
    // flagged GPU-time rows that failed falls below the floor, once enough rows were flagged.
    predictionPrecisionFloor: '0.05',
    predictionPrecisionMinFlagged: 20,
    predictionPrecisionFor: '6h',

    // Economics: recommended actions worth a ticket, stable for this long.
    retirementActions: 'sell|decommission',
    retirementRecommendedFor: '6h',
    // GPUs of a model no economics entry matches (gpu_scorer_econ_unvalued_gpus): a ticket once
    // the scorer has left them unvalued this long (a scorer restart or an edit of the economics
    // YAML in progress is not worth one).
    econUnvaluedFor: '1h',

    // Asset inventory: warn while a GPU at risk can still be repaired under warranty.
    warrantyEndingDays: 30,
    warrantyRiskHorizon: '30d',
    warrantyRiskThreshold: 0.1,
    warrantyEndingFor: '1h',

    // Exporter / scorer down.
    exporterDownFor: '5m',
    collectorFailingFor: '10m',
    scorerDownFor: '15m',
    // The scorer counts as stale when its results are older than this many seconds.
    scorerStaleSeconds: 3600,

    // Where every alert's runbook_url points; %s is the alert name. It must hold %s exactly
    // once, and any other % written as %% (a URL-encoded space is %%20).
    runbookURLPattern: 'https://github.com/gpu-health-monitor/gpu-health-monitor/blob/main/docs/runbooks/%s.md',
  },
}
