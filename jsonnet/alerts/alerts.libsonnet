// Alerts: one per failure an operator can act on, each with severity, a static summary, a
// description naming GPU, node, model and the value, and a runbook_url (added at the end from
// runbookURLPattern, so a fleet can point every link at its own wiki).
//
// Semantics (see docs/alerts.md): latched hardware states are level checks (increase() would
// miss a flag that was already set when the exporter started); gauges are read through
// max_over_time() so one failed scrape does not restart `for`; counters go through the
// per-GPU recording rules (rules/rules.libsonnet), which handle counter resets.
local gpuRef = 'GPU {{ $labels.gpu }} ({{ $labels.model }}, {{ $labels.uuid }}) on node {{ $labels.node }}';

{
  _config+:: {},

  local c = $._config,
  local r = $.gpuHealthRecords,
  local vars = c { exp: c.gpuExporterSelector, sco: c.gpuScorerSelector } + r,

  local xidAlert(cls) = {
    alert: cls.alert,
    expr: '%(rec)s{xid=~"%(codes)s"} > 0' % {
      rec: r.xid,
      codes: std.join('|', [std.toString(x) for x in cls.codes]),
    },
    'for': cls['for'],
    labels: { severity: if cls.severity == 'critical' then c.criticalSeverity else c.warningSeverity },
    annotations: {
      summary: 'GPU reported XID %s.' % std.join(', ', [std.toString(x) for x in cls.codes]),
      description: gpuRef + ' reported XID {{ $labels.xid }} {{ $value | printf "%.0f" }} time(s) in the last ' + c.xidWindow + ': ' + cls.action + '.',
    },
  },

  local hardware = [
    {
      alert: 'GPUFallenOffBus',
      expr: |||
        (
          gpu_up{%(exp)s} == 0
          and on (instance, uuid)
          %(xid)s{xid="79"} > 0
        )
        or
        max_over_time(gpu_up{%(exp)s}[%(gpuLostFor)s]) == 0
      ||| % vars,
      'for': c.gpuFallenOffBusFor,
      labels: { severity: c.criticalSeverity },
      annotations: {
        summary: 'GPU fell off the bus.',
        description: gpuRef + ' stopped answering (XID 79 or gpu_up = {{ $value }}): jobs on it have failed. Drain the node and reboot it; if the GPU is missing after the reboot, reseat or RMA it.',
      },
    },
    {
      alert: 'GPUMetricsAbsent',
      expr: |||
        last_over_time(gpu_up{%(exp)s}[%(gpuAbsentLookback)s])
        unless on (uuid)
        gpu_up{%(exp)s}
      ||| % vars,
      'for': c.gpuAbsentFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU disappeared from the exporter.',
        description: gpuRef + ' published metrics in the last ' + c.gpuAbsentLookback + ' and now publishes none: the driver no longer enumerates it (when the whole exporter is down, GPUExporterDown fires instead). Check nvidia-smi and dmesg on the node.',
      },
    },
    {
      alert: 'GPUUncorrectableEccErrors',
      expr: |||
        max_over_time(gpu_ecc_errors_total{%(exp)s, type="uncorrected", scope="volatile"}[%(rateInterval)s]) > 0
      ||| % vars,
      'for': '0m',
      labels: { severity: c.criticalSeverity },
      annotations: {
        summary: 'GPU has uncorrectable ECC errors.',
        description: gpuRef + ' has {{ $value | printf "%.0f" }} uncorrectable (double-bit) ECC error(s) since the driver loaded: data on it may be corrupt. Drain the GPU and reset it; check row remapping afterwards.',
      },
    },
    {
      alert: 'GPURowRemapFailure',
      expr: |||
        max_over_time(gpu_row_remap_failed{%(exp)s}[%(rateInterval)s]) == 1
      ||| % vars,
      'for': '0m',
      labels: { severity: c.criticalSeverity },
      annotations: {
        summary: 'GPU memory row remapping failed.',
        description: gpuRef + ' could not remap a failing HBM row (row_remap_failed = {{ $value }}): no spare row is left. Drain the GPU, run the DCGM field diagnostic and RMA the board.',
      },
    },
    {
      alert: 'GPURowRemapPending',
      expr: |||
        max_over_time(gpu_row_remap_pending{%(exp)s}[%(rateInterval)s]) == 1
      ||| % vars,
      'for': c.rowRemapPendingFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU needs a reset to apply a row remap.',
        description: gpuRef + ' has a pending HBM row remap (row_remap_pending = {{ $value }}): the spare row is used only after a GPU reset. Drain the GPU and reset it at the next opportunity.',
      },
    },
  ],

  local throttle = [
    {
      alert: 'GPUThermalSlowdown',
      expr: |||
        %(throttle)s{reason=~"%(thermalSlowdownReasons)s"} > %(thermalSlowdownRatio)s
      ||| % vars,
      'for': c.thermalSlowdownFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU clocks are held down by thermal slowdown.',
        description: gpuRef + ' was throttled by {{ $labels.reason }} {{ $value | humanizePercentage }} of the last ' + c.rateInterval + ': check airflow, fans, inlet temperature and the thermal interface.',
      },
    },
    {
      alert: 'GPUPowerBrake',
      expr: |||
        %(throttle)s{reason="hw_power_brake_slowdown"} > %(powerBrakeRatio)s
      ||| % vars,
      'for': c.powerBrakeFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU power brake is engaged.',
        description: gpuRef + ' had its hardware power brake asserted {{ $value | humanizePercentage }} of the last ' + c.rateInterval + ': the board or chassis signalled a power supply problem. Check the PSUs and the BMC event log.',
      },
    },
  ],

  local interconnect = [
    {
      alert: 'GPUPcieReplayStorm',
      expr: |||
        %(pcie)s * 60 > %(pcieReplaysPerMinuteThreshold)s
      ||| % vars,
      'for': c.pcieReplayFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU PCIe link is retrying transfers.',
        description: gpuRef + ' has {{ $value | printf "%.0f" }} PCIe replays per minute (budget ' + c.pcieReplaysPerMinuteThreshold + '): the link is degrading. Check the link width and generation, reseat the GPU or riser at the next maintenance.',
      },
    },
    {
      alert: 'GPUNvlinkErrors',
      expr: |||
        %(nvlink)s{type=~"crc_flit|crc_data"} > %(nvlinkCrcErrorsPerSecondThreshold)s
        or
        %(nvlink)s{type=~"replay|recovery"} > 0
      ||| % vars,
      'for': c.nvlinkErrorsFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU NVLink is reporting errors.',
        description: gpuRef + ' has {{ $value | printf "%.2f" }} NVLink {{ $labels.type }} errors per second: collective operations slow down or fail. Check nvidia-smi nvlink -e, reset the GPUs on the link at the next maintenance.',
      },
    },
  ],

  local health = [
    {
      alert: 'GPUHealthDegraded',
      expr: |||
        max_over_time(gpu_health_score{%(exp)s, dimension="overall"}[%(rateInterval)s]) < %(healthDegradedThreshold)s
      ||| % vars,
      'for': c.healthDegradedFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU health score is degraded.',
        description: gpuRef + ' has a health score of {{ $value | printf "%.0f" }} (below ' + c.healthDegradedThreshold + '). gpu_health_penalty names the reasons; plan maintenance.',
      },
    },
    {
      alert: 'GPUHealthCritical',
      expr: |||
        max_over_time(gpu_health_score{%(exp)s, dimension="overall"}[%(rateInterval)s]) < %(healthCriticalThreshold)s
      ||| % vars,
      'for': c.healthCriticalFor,
      labels: { severity: c.criticalSeverity },
      annotations: {
        summary: 'GPU health score is critical.',
        description: gpuRef + ' has a health score of {{ $value | printf "%.0f" }} (below ' + c.healthCriticalThreshold + '): it is likely to fail jobs. gpu_health_penalty names the reasons; drain it.',
      },
    },
  ],

  local scorer = [
    {
      alert: 'GPUFailurePredicted',
      expr: |||
        gpu_failure_probability{%(sco)s, horizon="%(failurePredictedHorizon)s"} > %(failurePredictedThreshold)s
      ||| % vars,
      'for': c.failurePredictedFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU is predicted to fail soon.',
        description: gpuRef + ' has a {{ $value | humanizePercentage }} probability of failing within ' + c.failurePredictedHorizon + ': move long jobs off it and schedule a diagnostic. gpu_failure_risk_factor names the drivers.',
      },
    },
    {
      alert: 'GPURetirementRecommended',
      // The value is what the recommended action gains over keeping the GPU (NPV difference).
      expr: |||
        (
          gpu_npv{%(sco)s, action=~"%(retirementActions)s"}
          - on (uuid, currency) group_left ()
          gpu_npv{%(sco)s, action="keep"}
        )
        and on (uuid, action)
        gpu_recommended_action{%(sco)s} == 1
      ||| % vars,
      'for': c.retirementRecommendedFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'Economics recommend retiring a GPU.',
        description: gpuRef + ': the economic model has recommended to {{ $labels.action }} it for ' + c.retirementRecommendedFor + '; that is worth {{ $value | printf "%.0f" }} {{ $labels.currency }} more (NPV) than keeping it. Review gpu_npv and plan the change.',
      },
    },
    {
      alert: 'GPUScorerPrecisionLow',
      // From `gpu-health-scorer outcomes` (textfile collector): past flags against the ledger.
      expr: |||
        gpu_prediction_precision < %(predictionPrecisionFloor)s
        and on (horizon, window)
        sum by (horizon, window) (gpu_prediction_outcomes{outcome=~"true_positive|false_positive"})
          >= %(predictionPrecisionMinFlagged)s
      ||| % vars,
      'for': c.predictionPrecisionFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU failure predictions are mostly false alarms.',
        description: 'Over the last {{ $labels.window }}, only {{ $value | humanizePercentage }} of the GPU-time rows flagged by the {{ $labels.horizon }} failure model{{ with $labels.instance }} (published by {{ . }}){{ end }} failed within the horizon (floor ' + c.predictionPrecisionFloor + '): the model no longer fits this fleet. Review the failure ledger, then retrain and promote through the gate.',
      },
    },
    {
      alert: 'GPUScorerDown',
      expr: |||
        up{%(sco)s} == 0
        or
        absent(up{%(sco)s})
        or
        time() - gpu_scorer_last_run_timestamp_seconds{%(sco)s} > %(scorerStaleSeconds)s
      ||| % vars,
      'for': c.scorerDownFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU health scorer is down or stale.',
        description: 'The GPU health scorer{{ with $labels.instance }} at {{ . }}{{ end }} is not producing results (value {{ $value | printf "%.0f" }}: 0 = not scraped, 1 = absent, else seconds since its last run): failure predictions and recommendations are frozen. Check the scorer logs.',
      },
    },
  ],

  local exporter = [
    {
      alert: 'GPUExporterDown',
      expr: |||
        (up{%(exp)s} == 0)
          * on (instance) group_left (node)
          group by (instance, node) (last_over_time(gpu_up{%(exp)s}[%(gpuAbsentLookback)s]))
        or on (instance)
        up{%(exp)s} == 0
        or
        absent(up{%(exp)s})
      ||| % vars,
      'for': c.exporterDownFor,
      labels: { severity: c.criticalSeverity },
      annotations: {
        summary: 'GPU exporter is down.',
        description: 'Prometheus cannot scrape the GPU exporter{{ with $labels.instance }} at {{ . }}{{ end }}{{ with $labels.node }} on node {{ . }}{{ end }}{{ if not $labels.instance }} (no target of {{ $labels.job }} is up){{ end }}: the node is down or the exporter crashed, and its GPUs are unmonitored. Check the node, then the exporter service.',
      },
    },
    {
      alert: 'GPUExporterCollectorFailing',
      // The exporter answers but a collector fails on every scrape: `gpu` when no GPU answers
      // (driver gone after an upgrade, NVML broken), `health` when the health model fails.
      expr: |||
        max_over_time(gpu_exporter_scrape_collector_success{%(exp)s}[%(rateInterval)s]) == 0
      ||| % vars,
      'for': c.collectorFailingFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU exporter collector is failing.',
        description: 'The {{ $labels.collector }} collector of the GPU exporter at {{ $labels.instance }} has failed on every scrape for ' + c.collectorFailingFor + ' (success = {{ $value }}): its series are missing. Check the exporter log and nvidia-smi on the node.',
      },
    },
  ],

  // Every GPU alert also carries the GPU's current overall health score, looked up when the
  // alert is evaluated, so a notification shows it without a second query.
  local healthScore = '{{ with printf `gpu_health_score{%s, dimension="overall", uuid="%%s"}` $labels.uuid | query }}{{ . | first | value | printf "%%.0f" }}{{ else }}unknown{{ end }}' % c.gpuExporterSelector,
  local nonGpuAlerts = ['GPUExporterDown', 'GPUExporterCollectorFailing', 'GPUScorerDown', 'GPUScorerPrecisionLow'],
  local decorate(rule) = rule {
    annotations+: { runbook_url: c.runbookURLPattern % rule.alert } + (
      if std.member(nonGpuAlerts, rule.alert) then {} else { health_score: healthScore }
    ),
  },
  local group(name, rules) = { name: name, rules: [decorate(x) for x in rules] },

  local xidCodes = std.flattenArrays([cls.codes for cls in c.xidClasses]),
  assert std.length(xidCodes) == std.length(std.set(xidCodes)) : 'an XID code is in two xidClasses',
  assert !std.member(xidCodes, 79) : 'XID 79 is GPUFallenOffBus; remove it from xidClasses',

  prometheusAlerts+:: {
    groups+: [
      group('gpu-health-hardware', hardware),
      group('gpu-health-xid', [xidAlert(cls) for cls in c.xidClasses]),
      group('gpu-health-throttle', throttle),
      group('gpu-health-interconnect', interconnect),
      group('gpu-health-score', health),
      group('gpu-health-exporter', exporter),
    ] + (if c.scorerEnabled then [group('gpu-health-scorer', scorer)] else []),
  },
}
