// Alerts: one per failure an operator can act on, each with severity, a static summary, a
// description naming GPU, node, model and the value, and a runbook_url (added at the end from
// runbookURLPattern, so a fleet can point every link at its own wiki).
//
// Semantics (see docs/alerts.md): every fault is detected within five minutes of its onset.
// Hard faults (a lost GPU, uncorrectable errors, a failed remap, reset-required XIDs) are
// latched states read through last_over_time() over hardFaultGapTolerance: they stay firing
// until the GPU is reset or replaced (the counter restarts at zero or the uuid changes), and a
// scrape gap shorter than the tolerance neither resolves nor re-pages them. Soft faults are rates
// or shares over the last rateInterval against a floor, which are persistent by construction, so
// their `for` holds are short; counters go through the per-GPU recording rules
// (rules/rules.libsonnet), which handle counter resets.
local gpuRef = 'GPU {{ $labels.gpu }} ({{ $labels.model }}, {{ $labels.uuid }}) on node {{ $labels.node }}';

{
  _config+:: {},

  local c = $._config,
  local r = $.gpuHealthRecords,
  local vars = c { exp: c.gpuExporterSelector, sco: c.gpuScorerSelector } + r + $.gpuHealthExprs,

  // Every runbook link: runbookURLPattern with the alert name for its one %s. Checked here so a
  // wrong pattern names the field instead of failing inside std.format.
  local runbookURL(name) =
    local pattern = c.runbookURLPattern;
    assert std.isString(pattern) : 'runbookURLPattern must be a string, got %s' % std.type(pattern);
    local stripped = std.strReplace(pattern, '%%', '');
    assert std.length(std.findSubstr('%', stripped)) == 1 && std.length(std.findSubstr('%s', stripped)) == 1 :
           'runbookURLPattern must contain %%s exactly once (the alert name); write a literal %% as %%%% (a URL-encoded space is %%%%20), got %s' % std.manifestJson(pattern);
    pattern % name,

  // What each XID code means, so a page names the one code that happened (from NVIDIA's Xid
  // catalog, docs.nvidia.com/deploy/xid-errors). A code a fleet adds to xidClasses without a
  // meaning here points to the catalog instead.
  local xidMeaning = {
    '46': 'GPU stopped processing',
    '48': 'double-bit ECC error',
    '62': 'internal micro-controller halt',
    '63': 'ECC page retirement or row remapping recorded',
    '64': 'ECC page retirement or row remapper recording failure',
    '74': 'NVLink error',
    '92': 'high single-bit ECC error rate',
    '94': 'contained ECC error',
    '95': 'uncontained ECC error',
    '109': 'context switch timeout',
    '119': 'GSP RPC timeout',
    '120': 'GSP error',
    '140': 'unrecovered ECC error',
    '143': 'GPU initialization failure',
    '144': 'NVLink5 SAW error',
    '145': 'NVLink5 RLW error',
    '146': 'NVLink5 TLW error',
    '147': 'NVLink5 TREX error',
    '148': 'NVLink5 NVLPW control error',
    '149': 'NVLink5 NETIR error',
    '150': 'NVLink5 MSE error',
  },
  local xidMeaningTemplate(codes) =
    std.join('', [
      '{{ %sif eq $labels.xid "%s" }}%s' % [if i == 0 then '' else 'else ', codes[i], xidMeaning[codes[i]]]
      for i in std.range(0, std.length(codes) - 1)
      if std.objectHas(xidMeaning, codes[i])
    ]) + (
      if std.length([x for x in codes if std.objectHas(xidMeaning, x)]) > 0
      then '{{ else }}see the NVIDIA Xid catalog{{ end }}'
      else 'see the NVIDIA Xid catalog'
    ),

  // An XID class fires while the exporter's count of its code is above zero (latched; xidWindow
  // plays no part). With the kernel-log source the count runs since boot, so it restarts at zero
  // only at a reboot; without it, when the exporter restarts (drain, stop the exporter, reset,
  // start it). A replaced board has a new uuid. It does not resolve by itself.
  local xidAlert(cls) =
    local codes = [std.toString(x) for x in cls.codes];
    {
      alert: cls.alert,
      expr: 'last_over_time(gpu_xid_errors_total{%(exp)s, xid=~"%(codes)s"}[%(gap)s]) > 0' % {
        exp: c.gpuExporterSelector,
        codes: std.join('|', codes),
        gap: c.hardFaultGapTolerance,
      },
      'for': cls['for'],
      labels: { severity: if cls.severity == 'critical' then c.criticalSeverity else c.warningSeverity },
      annotations: {
        summary: 'GPU reported an XID error.',
        // The code and its meaning, for notifications (the summary stays static).
        xid_meaning: 'XID {{ $labels.xid }}: ' + xidMeaningTemplate(codes),
        description: gpuRef + ' reported XID {{ $labels.xid }} (' + xidMeaningTemplate(codes) + ') {{ $value | printf "%.0f" }} time(s) (counted since boot with the kernel-log source, else since the exporter started): ' + cls.action + '. The alert stays until the exporter count restarts at zero: at the next reboot when the exporter reads the kernel log (its counts run since boot), else when the exporter restarts after the reset; silence it after a repair that needs neither.',
      },
    },

  local hardware = [
    {
      alert: 'GPUMassFailure',
      // A burst, not a backlog: at least massFailureGpus GPUs stopped answering within
      // massFailureWindow of each other (lostBurst: fallen off the bus, or on an exporter that
      // went down), now or at some point in the last massFailureHold, and at least
      // massFailureGpus GPUs are still down. A trickle of unrelated losses never fires it, and
      // it resolves massFailureHold after the burst even if the outage lasts, so the members'
      // pages muted through Alertmanager (GPUMassFailureMember) are muted for a bounded time. The burst is read
      // inline (not only from its record, which another group evaluates) and its `for` is no
      // longer than the per-GPU and per-node alerts', so it fires first. A GPU that answered
      // down just before its exporter went down counts twice for at most hardFaultGapTolerance.
      // The value is the burst: its size now, or its peak within massFailureHold.
      expr: |||
        (
          (
            %(lostBurst)s
          ) >= %(massFailureGpus)d
          or
          max_over_time(%(lostBurstRecord)s[%(massFailureHold)s]) >= %(massFailureGpus)d
        )
        and
        (
          %(downNow)s
        ) >= %(massFailureGpus)d
      ||| % (vars {
               lostBurst: std.strReplace(std.rstripChars($.gpuHealthExprs.lostBurst, '\n'), '\n', '\n    '),
               downNow: std.strReplace(std.rstripChars($.gpuHealthExprs.downNow, '\n'), '\n', '\n  '),
               lostBurstRecord: r.lostBurst,
             }),
      'for': c.massFailureFor,
      labels: { severity: c.criticalSeverity },
      annotations: {
        summary: 'Many GPUs stopped answering at once.',
        description: '{{ $value | printf "%.0f" }} GPUs stopped answering within ' + c.massFailureWindow + ' of each other (fallen off the bus, or their exporter went down), and at least ' + c.massFailureGpus + ' are still down: one cause shared by many nodes, such as power, network, cooling or a driver roll-out. Their own GPUFallenOffBus, GPUExporterDown and GPUMetricsAbsent pages are held (GPUMassFailureMember names them) for at most ' + c.massFailureHold + ' after the burst; a GPU or exporter lost outside the burst pages as usual. Find the common cause first (the fleet dashboard lists them).',
      },
    },
    {
      alert: 'GPUMassFailureMember',
      // One per member of the burst (a GPU by uuid, an exporter by instance), never a page
      // (severity info): Alertmanager mutes the GPUFallenOffBus and GPUMetricsAbsent pages of a
      // member GPU and the GPUExporterDown and GPUMetricsAbsent pages of a member exporter, and
      // nothing else, so a loss outside the burst pages while GPUMassFailure fires. A member
      // stays one for massFailureHold after it was last counted in the burst (an exporter only
      // while it is still down), while GPUMassFailure's still-down condition holds, so it ends
      // with GPUMassFailure; the members' own pages then go out. The burst's members now are
      // read inline (not only from the record, which another group evaluates), so the alert
      // fires at the evaluation that sees the burst, before any member's own `for` ends.
      expr: |||
        (
          (
            %(burstMembersNow)s
          )
          or
          last_over_time(%(burstMembersRecord)s{%(exp)s, uuid!=""}[%(massFailureHold)s])
          or
          last_over_time(%(burstMembersRecord)s{%(exp)s, uuid=""}[%(massFailureHold)s])
          and on (instance)
          up{%(exp)s} == 0
        )
        and on ()
        (
          %(downNow)s
        ) >= %(massFailureGpus)d
      ||| % (vars {
               burstMembersNow: std.strReplace(std.rstripChars($.gpuHealthExprs.burstMembers, '\n'), '\n', '\n    '),
               downNow: std.strReplace(std.rstripChars($.gpuHealthExprs.downNow, '\n'), '\n', '\n  '),
               burstMembersRecord: r.burstMembers,
             }),
      'for': '0m',
      labels: { severity: c.infoSeverity },
      annotations: {
        summary: 'GPU or exporter lost in a mass failure.',
        description: '{{ if $labels.uuid }}GPU {{ $labels.gpu }} ({{ $labels.model }}, {{ $labels.uuid }}) on node {{ $labels.node }}{{ else }}The GPU exporter at {{ $labels.instance }}{{ end }} stopped answering (reading {{ $value }}) in the burst GPUMassFailure reports: Alertmanager holds its own down pages for at most ' + c.massFailureHold + ' after the burst. Not a page; see GPUMassFailure.',
      },
    },
    {
      alert: 'GPUFallenOffBus',
      // The last reading within hardFaultGapTolerance says down (so a scrape gap neither
      // resolves nor re-pages it), and either XID 79 was seen or every reading for gpuLostFor
      // said down. A GPU that answers again resolves it at the next evaluation.
      // The second half latches a confirmed loss (XID 79, or the downFor record: down for
      // gpuLostFor) when the GPU's series stop: an exporter restarted on the node (an OOM
      // kill, a rolling update) no longer lists a GPU that does not answer, and the page
      // resolved by itself 10 minutes later, a warning (GPUMetricsAbsent) in its place. It
      // holds while the last reading of the last gpuAbsentLookback said down, until a GPU
      // answers from the same node and slot (gpuSlotLabel, the PCI bus id: the board back, or
      // its replacement; not the `gpu` index, which shifts when the driver drops a GPU).
      expr: |||
        (
          last_over_time(gpu_up{%(exp)s}[%(hardFaultGapTolerance)s]) == 0
          and on (instance, uuid)
          (
            last_over_time(gpu_xid_errors_total{%(exp)s, xid="79"}[%(hardFaultGapTolerance)s]) > 0
            or on (instance, uuid)
            max_over_time(last_over_time(gpu_up{%(exp)s}[%(hardFaultGapTolerance)s])[%(gpuLostFor)s:15s]) == 0
          )
        )
        or
        (
          %(silentLast)s{%(exp)s} == 0
          and on (instance, uuid)
          (
            last_over_time(gpu_xid_errors_total{%(exp)s, xid="79"}[%(gpuAbsentLookback)s]) > 0
            or on (instance, uuid)
            last_over_time(%(downFor)s{%(exp)s}[%(gpuAbsentLookback)s])
          )
          unless on (%(nodeLabel)s, %(gpuSlotLabel)s)
          gpu_up{%(exp)s, %(gpuSlotLabel)s!=""} == 1
        )
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
      // The silent-GPU record (rules: gpu_up seen within gpuAbsentLookback, none now, no GPU
      // answering from the same node and slot), so the 6h range is read once per evaluation
      // for the alert and the dashboards; a record one evaluation behind is harmless under
      // `for`. A board replaced in the same slot does not fire it.
      expr: |||
        %(absent)s{%(exp)s}
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
        last_over_time(gpu_ecc_errors_total{%(exp)s, type="uncorrected", scope="volatile"}[%(hardFaultGapTolerance)s]) > 0
      ||| % vars,
      'for': '0m',
      labels: { severity: c.criticalSeverity },
      annotations: {
        summary: 'GPU has uncorrectable ECC errors.',
        description: gpuRef + ' has {{ $value | printf "%.0f" }} uncorrectable (double-bit) ECC error(s) since the driver loaded: data on it may be corrupt. Drain the GPU and reset it; check row remapping afterwards.',
      },
    },
    {
      alert: 'GPUCorrectableEccStorm',
      // Corrected errors are harmless one by one; hundreds a minute for minutes point to a
      // weakening HBM row or bank (a remap or an uncorrectable error may follow).
      // XID 92 is the driver's own verdict on the same rate. Errors come in bursts, so the
      // alert takes the highest 5m rate of the last eccStormHold: it fires on the first 5m
      // window above the floor and does not resolve in a lull between bursts.
      expr: |||
        max without (type) (max_over_time(%(ecc)s{type="corrected"}[%(eccStormHold)s])) * 60 > %(eccCorrectedPerMinuteThreshold)s
        or on (instance, uuid)
        max without (xid) (%(xid)s{xid="92"}) > 0
      ||| % vars,
      'for': c.eccStormFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU memory is reporting a storm of corrected ECC errors.',
        description: gpuRef + ' reported more than ' + c.eccCorrectedPerMinuteThreshold + ' corrected ECC errors per minute over ' + c.rateInterval + ' in the last ' + c.eccStormHold + ', or XID 92 (high single-bit ECC error rate); value {{ $value | printf "%.0f" }} (errors per minute, or XID 92 events): a memory row or bank is weakening. Watch for a pending row remap; drain and reset the GPU at the next maintenance, RMA it if the storm returns.',
      },
    },
    {
      alert: 'GPURowRemapFailure',
      expr: |||
        last_over_time(gpu_row_remap_failed{%(exp)s}[%(hardFaultGapTolerance)s]) == 1
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
        last_over_time(gpu_row_remap_pending{%(exp)s}[%(hardFaultGapTolerance)s]) == 1
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
        max without (reason) (
          %(throttle)s{reason=~"%(thermalSlowdownReasons)s"} > %(thermalSlowdownRatio)s
        )
      ||| % vars,
      'for': c.thermalSlowdownFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU clocks are held down by thermal slowdown.',
        description: gpuRef + ' was throttled by thermal slowdown {{ $value | humanizePercentage }} of the last ' + c.rateInterval + ': check airflow, fans, inlet temperature and the thermal interface.',
      },
    },
    {
      alert: 'GPUPowerBrake',
      // The brake flag (sampled at scrapes) or the board-limit violation counter (NVML's
      // cumulative time held down by the board's hardware slowdown inputs, which a scrape
      // cannot miss), both as a share of the last rateInterval; one alert per GPU whichever
      // of the two shows it (`without (reason)`), so it does not flap between them.
      expr: |||
        max without (reason) (
          %(throttle)s{reason="hw_power_brake_slowdown"} > %(powerBrakeRatio)s
          or
          %(throttleSeconds)s{reason="board_limit"} > %(boardLimitRatio)s
        )
      ||| % vars,
      'for': c.powerBrakeFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU power brake is engaged.',
        description: gpuRef + ' had its clocks held down by the hardware power brake or board limit {{ $value | humanizePercentage }} of the last ' + c.rateInterval + ': the board or chassis signalled a power supply problem. Check the PSUs and the BMC event log.',
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
      // The value is the error rate as a multiple of its budget (CRC per second, replay and
      // recovery per minute), the worst type counting: one alert per GPU as the types cross
      // their budgets one after another.
      expr: |||
        max without (type) (
          %(nvlink)s{type=~"crc_flit|crc_data"} / %(nvlinkCrcErrorsPerSecondThreshold)s
          or
          %(nvlink)s{type=~"replay|recovery"} * 60 / %(nvlinkReplaysPerMinuteThreshold)s
        ) > 1
      ||| % vars,
      'for': c.nvlinkErrorsFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU NVLink is reporting errors.',
        description: gpuRef + ' has NVLink errors at {{ $value | printf "%.1f" }} times the budget over the last ' + c.rateInterval + ' (CRC ' + c.nvlinkCrcErrorsPerSecondThreshold + '/s, replay and recovery ' + c.nvlinkReplaysPerMinuteThreshold + '/min): collective operations slow down or fail. Check nvidia-smi nvlink -e, reset the GPUs on the link at the next maintenance.',
      },
    },
  ],

  local health = [
    {
      alert: 'GPUHealthDegraded',
      // Also a GPU that answers (gpu_up) but publishes an overall score that is not a number
      // (unknownScore record: a NaN, which `<` never matches; VictoriaMetrics drops it on
      // ingestion, so there it cannot fire); its value is then -1. A GPU whose health is
      // unknown must not pass as healthy; silent GPUs are GPUMetricsAbsent's, and one that
      // publishes no score (its health collector failing) GPUExporterCollectorFailing's.
      expr: |||
        max_over_time(gpu_health_score{%(exp)s, dimension="overall"}[%(rateInterval)s]) < %(healthDegradedThreshold)s
        or on (instance, uuid)
        (%(unknownScore)s{%(exp)s} and on (instance, uuid) gpu_up{%(exp)s}) - 1
      ||| % vars,
      'for': c.healthDegradedFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU health score is degraded.',
        description: gpuRef + ' has {{ if lt $value 0.0 }}an overall health score that is not a number (NaN){{ else }}a health score of {{ $value | printf "%.0f" }} (below ' + c.healthDegradedThreshold + '){{ end }}. gpu_health_penalty names the reasons; plan maintenance.',
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

  // A label value is pasted into the PromQL of the lookups below: only a plain UUID (letters,
  // digits, '.', '_', ':', '-', as GPU-, MIG- and dcgm-exporter UUIDs are) is looked up. A
  // forged one holding a quote would otherwise rewrite the query and could read any series
  // into a notification (or make a lost GPU's health score read 100).
  local uuidIsPlain = 'match "^[A-Za-z0-9._:-]+$" $labels.uuid',
  // The GPU's top risk factors in words (the scorer's gpu_scorer_risk_factor_info labels),
  // largest first, looked up when the alert is evaluated; absent when the scorer names none.
  local riskFactors = '{{ if %s }}{{ range $i, $f := printf `sort_desc(topk(3, gpu_failure_risk_factor{%s, horizon="%s", uuid="%%s"} > 0) * on (feature) group_left (label) max by (feature, label) (gpu_scorer_risk_factor_info{%s}))` $labels.uuid | query }}{{ if $i }}; {{ end }}{{ $f.Labels.label }}{{ end }}{{ end }}' % [uuidIsPlain, c.gpuScorerSelector, c.failurePredictedHorizon, c.gpuScorerSelector],
  // The GPU's most likely failure class (the scorer's gpu_failure_class_probability), looked up
  // when the alert is evaluated rather than joined into the expression: a class that changes
  // would otherwise end the alert and restart its `for` hold under a new label set. The
  // scorer publishes one class per GPU; when several series answer (two scorer replicas), the
  // highest probability wins and an exact tie goes to the alphabetically first class, so the
  // annotation never flips between equals. `body` reads $class ("" when the scorer names none)
  // and $p (its probability).
  local withFailureClass(body) =
    '{{ $class := "" }}{{ $p := -1.0 }}{{ if %s }}{{ range printf `max by (class) (gpu_failure_class_probability{%s, uuid="%%s"})` $labels.uuid | query | sortByLabel "class" }}{{ if gt .Value $p }}{{ $class = .Labels.class }}{{ $p = .Value }}{{ end }}{{ end }}{{ end }}' % [uuidIsPlain, c.gpuScorerSelector] + body,
  local classRunbooks = c.failureClassRunbooks,
  local classNames = std.objectFields(classRunbooks),
  // The class's runbook (config failureClassRunbooks); this alert's own runbook without a class.
  local classRunbookURL = withFailureClass(
    std.join('', [
      '{{ %sif eq $class "%s" }}%s' % [if i == 0 then '' else 'else ', classNames[i], runbookURL(classRunbooks[classNames[i]])]
      for i in std.range(0, std.length(classNames) - 1)
    ]) + '{{ else }}' + runbookURL('GPUFailurePredicted') + '{{ end }}'
  ),
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
        description: gpuRef + ' has a {{ $value | humanizePercentage }} probability of failing within ' + c.failurePredictedHorizon + ': move long jobs off it and schedule a diagnostic. gpu_failure_risk_factor names the drivers.' + withFailureClass('{{ if $class }} Most likely failure class: {{ $class }} ({{ $p | humanizePercentage }}); follow its runbook.{{ end }}'),
        risk_factors: riskFactors,
        failure_class: withFailureClass('{{ $class }}'),
        failure_class_probability: withFailureClass('{{ if $class }}{{ $p | printf "%.2f" }}{{ end }}'),
        runbook_url: classRunbookURL,
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
      alert: 'GPUEconomicsUnvalued',
      // The scorer's own count of the GPUs it scored but could not value (no economics entry
      // matches their model), summed over its shards per model; no series while every GPU is
      // valued. A fleet-level series without GPU labels, as GPUScorerPrecisionLow's: one alert
      // per model, not per GPU. While the scorer is down it publishes nothing (GPUScorerDown).
      expr: |||
        sum without (instance) (gpu_scorer_econ_unvalued_gpus{%(sco)s}) > 0
      ||| % vars,
      'for': c.econUnvaluedFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPUs of a model have no economic valuation.',
        description: 'The scorer has not valued {{ $value | printf "%.0f" }} GPU(s) of model {{ $labels.model }} for ' + c.econUnvaluedFor + ': no economics entry matches the model, so they get no NPV, no recommended action and no residual value; the risk and economics dashboard and GPURetirementRecommended leave them out. Add an entry for the model under models: to the YAML given with --econ.params (docs/economics.md).',
      },
    },
    {
      alert: 'GPUWarrantyEndingAtRisk',
      // The value is the warranty time left; only GPUs the model sees at risk qualify.
      expr: |||
        (
          gpu_warranty_remaining_seconds{%(sco)s} < %(warrantyEndingDays)s * 86400
          and
          gpu_warranty_remaining_seconds{%(sco)s} > 0
        )
        and on (uuid)
        max by (uuid) (gpu_failure_probability{%(sco)s, horizon="%(warrantyRiskHorizon)s"}) > %(warrantyRiskThreshold)s
      ||| % vars,
      'for': c.warrantyEndingFor,
      labels: { severity: c.warningSeverity },
      annotations: {
        summary: 'GPU at risk is about to leave warranty.',
        description: gpuRef + ': its warranty ends in {{ $value | humanizeDuration }} and its ' + c.warrantyRiskHorizon + ' failure probability is above ' + std.format('%g', [c.warrantyRiskThreshold]) + '. Run a diagnostic now and file any RMA while the warranty still covers it.',
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
          group by (instance, node) (topk by (instance) (1, last_over_time(%(nodeLastSeen)s{%(exp)s}[%(gpuAbsentLookback)s])))
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
  local healthScore = '{{ if %s }}{{ with printf `gpu_health_score{%s, dimension="overall", uuid="%%s"}` $labels.uuid | query }}{{ . | first | value | printf "%%.0f" }}{{ else }}unknown{{ end }}{{ else }}unknown{{ end }}' % [uuidIsPlain, c.gpuExporterSelector],
  local nonGpuAlerts = ['GPUMassFailureMember', 'GPUExporterDown', 'GPUExporterCollectorFailing', 'GPUScorerDown', 'GPUScorerPrecisionLow', 'GPUEconomicsUnvalued'],
  local decorate(rule) = rule {
    // A rule that names its own runbook (GPUFailurePredicted: the class's) keeps it.
    annotations+: { runbook_url: std.get(rule.annotations, 'runbook_url', runbookURL(rule.alert)) } + (
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
