// Recording rules, named level:metric:operations (prometheus.io/docs/practices/rules).
//
// One group per level: per-GPU rules read raw series once; node, model and fleet rules read
// the per-GPU rules, so dashboards and alerts never repeat the raw query. Aggregations use
// `without (...)` so job, cluster and other external labels survive.
local join(list) = std.join(', ', list);

{
  _config+:: {},

  local c = $._config,
  local exp = c.gpuExporterSelector,
  local sco = c.gpuScorerSelector,
  // Labels removed at each level.
  local toNode = join(c.gpuLabels + [c.modelLabel]),
  local toModel = join(['instance', c.nodeLabel] + c.gpuLabels),
  local toFleet = join(['instance', c.nodeLabel, c.modelLabel] + c.gpuLabels),
  local vars = c {
    exp: exp,
    absent: $.gpuHealthRecords.absent,
    unknownScore: $.gpuHealthRecords.unknownScore,
    // The overall score of every GPU the exporter knows: finite scores as published, and 0
    // for a GPU whose score is unknown (silent, or NaN).
    overallScore: 'gpu_health_score{%(exp)s, dimension="overall"} >= 0 or %(unknownScore)s{%(exp)s}' % { exp: exp, unknownScore: $.gpuHealthRecords.unknownScore },
    // The exporter's grades plus a "silent" grade for every silent GPU.
    grades: 'gpu_health_grade{%(exp)s} or label_replace(%(absent)s{%(exp)s} + 1, "grade", "silent", "", "")' % { exp: exp, absent: $.gpuHealthRecords.absent },
    sco: sco,
    toNode: toNode,
    toModel: toModel,
    toFleet: toFleet,
  },

  // The record names, shared with alerts (and usable by dashboards) so a rename cannot drift.
  gpuHealthRecords:: {
    xid: 'gpu_xid:gpu_xid_errors:increase%(xidWindow)s' % c,
    ecc: 'gpu_type:gpu_ecc_errors:rate%(rateInterval)s' % c,
    throttle: 'gpu_reason:gpu_clock_event_active:avg_over_time%(rateInterval)s' % c,
    throttleSeconds: 'gpu_reason:gpu_clock_event_seconds:rate%(rateInterval)s' % c,
    pcie: 'gpu:gpu_pcie_replays:rate%(rateInterval)s' % c,
    nvlink: 'gpu_type:gpu_nvlink_errors:rate%(rateInterval)s' % c,
    // GPUs that stopped answering within massFailureWindow (GPUMassFailure's burst).
    lostBurst: 'fleet:gpu_up:lost_count%(massFailureWindow)s' % c,
    // The burst's members while it is at or over massFailureGpus: a series per GPU counted in
    // it (with its uuid) and per exporter counted in it (instance, no uuid), value 0; none
    // otherwise. GPUMassFailureMember holds them for massFailureHold, and Alertmanager mutes
    // only the members' down pages.
    burstMembers: 'gpu:gpu_up:lost_in_burst%(massFailureWindow)s' % c,
    // Each exporter's last-seen time per node it reported (GPUExporterDown names the newest).
    nodeLastSeen: 'node:gpu_up:last_timestamp',
    // GPUs whose every reading for gpuLostFor said down (GPUFallenOffBus latches them).
    downFor: 'gpu:gpu_up:down_for%(gpuLostFor)s' % c,
    // Silent GPUs: seen within gpuAbsentLookback, publishing no gpu_up now, and not replaced
    // (no GPU answers from the same node and slot). Value 0. GPUMetricsAbsent and the
    // dashboards read it.
    absent: 'gpu:gpu_up:absent%(gpuAbsentLookback)s' % c,
    // The last gpu_up reading within gpuAbsentLookback of the GPUs that publish none now (0:
    // it was down when its series stopped), replaced or not: the one range read of the whole
    // fleet's gpu_up over the lookback, shared by the absent record and GPUFallenOffBus.
    silentLast: 'gpu:gpu_up:silent_last%(gpuAbsentLookback)s' % c,
    // GPUs whose overall health is unknown, as a score of 0 (dimension="overall"): the silent
    // ones, and those publishing a score that is not a finite number (NaN). The health
    // aggregates add them, so a GPU that stops reporting never leaves the averages.
    unknownScore: 'gpu:gpu_health_score:unknown',
    // Every GPU's overall score with the unknown ones as 0 (dimension="overall"): the health
    // panels read it instead of joining scores, unknown and silent GPUs at every step.
    overallScore: 'gpu:gpu_health_score:overall',
    // GPU slots (node, gpuSlotLabel) seen within coverageLookback, per exporter and model,
    // value 1: what the coverage panels count as expected.
    slotsSeen: 'slot:gpu_info:seen%(coverageLookback)s' % c,
    // Distinct GPU slots per node seen within coverageLookback, whatever exporter or model
    // reported them: the coverage-by-node panel's denominator.
    nodeSlotsSeen: 'node:gpu_info:slots_seen%(coverageLookback)s' % c,
    // The models each node reported within coverageLookback (value 1): how that panel applies
    // the model variable.
    nodeModelsSeen: 'node_model:gpu_info:seen%(coverageLookback)s' % c,
    // GPUs answering per node and exporter (the coverage-by-node panel's numerator).
    nodeUp: 'node:gpu_up:sum',
  },
  local r = self.gpuHealthRecords,

  // PromQL shared by a recording rule and an alert (GPUMassFailure reads the burst inline, so
  // it never waits for the fleet group's evaluation and still fires before the per-GPU pages).
  gpuHealthExprs:: {
    // GPUs down now (their last reading within hardFaultGapTolerance says gpu_up 0) that
    // answered at some point in massFailureWindow, plus the GPUs (last recorded count) of the
    // exporters down now that were up at some point in the window. A steady trickle of
    // losses keeps this small; GPUs that fall together push it up at once.
    lostBurst: |||
      (
        count(
          last_over_time(gpu_up{%(exp)s}[%(hardFaultGapTolerance)s]) == 0
          and on (instance, uuid)
          max_over_time(gpu_up{%(exp)s}[%(massFailureWindow)s]) == 1
        )
        or vector(0)
      )
      +
      (
        sum(
          last_over_time(node:gpu_up:count{%(exp)s}[%(gpuAbsentLookback)s])
          and on (instance)
          (up{%(exp)s} == 0 and on (instance) max_over_time(up{%(exp)s}[%(massFailureWindow)s]) == 1)
        )
        or vector(0)
      )
    ||| % vars,
    // The members of the burst now, while it is at or over massFailureGpus: the GPUs and
    // the exporters lostBurst counts (value 0, the reading: gpu_up or up). Nothing otherwise.
    burstMembers: |||
      (
        last_over_time(gpu_up{%(exp)s}[%(hardFaultGapTolerance)s]) == 0
        and on (instance, uuid)
        max_over_time(gpu_up{%(exp)s}[%(massFailureWindow)s]) == 1
        or
        up{%(exp)s} == 0
        and on (instance)
        max_over_time(up{%(exp)s}[%(massFailureWindow)s]) == 1
        and on (instance)
        last_over_time(node:gpu_up:count{%(exp)s}[%(gpuAbsentLookback)s])
      )
      and on ()
      (
        %(lostBurstIndented)s
      ) >= %(massFailureGpus)d
    ||| % (vars { lostBurstIndented: std.strReplace(std.rstripChars($.gpuHealthExprs.lostBurst, '\n'), '\n', '\n  ') }),
    // Every GPU not answering now, however long ago it stopped: those answering gpu_up 0
    // plus the GPUs of exporters that are down.
    downNow: |||
      (count(last_over_time(gpu_up{%(exp)s}[%(hardFaultGapTolerance)s]) == 0) or vector(0))
      +
      (sum(last_over_time(node:gpu_up:count{%(exp)s}[%(gpuAbsentLookback)s]) and on (instance) (up{%(exp)s} == 0)) or vector(0))
    ||| % vars,
  },

  prometheusRules+:: {
    groups+: [
      {
        name: 'gpu-health-gpu.rules',
        rules: [
          {
            // XID events per GPU and code in the window, for the codes that had one. The
            // exporter creates every catalogued code's counter at 0 as soon as it watches a
            // GPU (and counts from the kernel log since boot, so a restart neither loses nor
            // repeats events), hence a plain increase() sees the first event too; it also
            // handles the counter resets of an exporter restart without the kernel log. A code
            // outside the catalogue is still born with its first event and has no series here
            // until its second. Only codes with an event are kept: the zeros were 26 series per
            // GPU written every evaluation, half this rule's cost and half the mixin's recorded
            // series (bench/bench_rule_cost.py).
            record: r.xid,
            expr: |||
              increase(gpu_xid_errors_total{%(exp)s}[%(xidWindow)s]) > 0
            ||| % vars,
          },
          {
            // Volatile ECC errors per second by type (corrected, uncorrected).
            record: r.ecc,
            expr: |||
              sum without (scope) (rate(gpu_ecc_errors_total{%(exp)s, scope="volatile"}[%(rateInterval)s]))
            ||| % vars,
          },
          {
            // Fraction of scrapes in the window with each throttling reason active.
            record: r.throttle,
            expr: |||
              avg_over_time(gpu_clock_event_active{%(exp)s, reason!~"%(benignClockEventReasons)s"}[%(rateInterval)s])
            ||| % vars,
          },
          {
            // Fraction of time clocks were held down, by policy (NVML violation counters).
            record: r.throttleSeconds,
            expr: |||
              rate(gpu_clock_event_seconds_total{%(exp)s}[%(rateInterval)s])
            ||| % vars,
          },
          {
            record: r.pcie,
            expr: |||
              rate(gpu_pcie_replays_total{%(exp)s}[%(rateInterval)s])
            ||| % vars,
          },
          {
            // NVLink errors per second by type, summed over the GPU's links: the rate of the
            // exporter's per-GPU total, which it sends beside every per-link counter (4 series
            // per GPU where the links are 72 on an 18-link board; summing the per-link rates
            // was this group's costliest rule, 15 times this one: bench/bench_rule_cost.py).
            record: r.nvlink,
            expr: |||
              rate(gpu_nvlink_errors_all_links_total{%(exp)s}[%(rateInterval)s])
            ||| % vars,
          },
          {
            // A GPU lost by gpu_up alone (no XID 79): it reads down now, read down gpuLostFor
            // ago, and read nothing else in between. Raw readings only: the alert's
            // gap-tolerant form would also count the 0 a vanished series leaves behind.
            // Recorded only while true (a series per lost GPU with the reading, 0, as its value;
            // none per healthy one), so that
            // GPUFallenOffBus can keep paging after an exporter restart drops the GPU's
            // series, as it does for a loss with XID 79.
            record: r.downFor,
            expr: |||
              max_over_time(gpu_up{%(exp)s}[%(gpuLostFor)s]) == 0
              and on (instance, uuid)
              (gpu_up{%(exp)s} offset %(gpuLostFor)s) == 0
              and on (instance, uuid)
              gpu_up{%(exp)s}
            ||| % vars,
          },
          {
            // The last gpu_up reading within gpuAbsentLookback of every GPU that publishes
            // none now. Reading gpu_up over the lookback for every GPU was the costliest part
            // of the absent record and of GPUFallenOffBus's latch, each doing it
            // (bench/bench_rule_cost.py); both read this record instead.
            record: r.silentLast,
            expr: |||
              last_over_time(gpu_up{%(exp)s}[%(gpuAbsentLookback)s])
              unless on (uuid)
              gpu_up{%(exp)s}
            ||| % vars,
          },
          {
            // Silent GPUs (value 0): published gpu_up within gpuAbsentLookback and none now,
            // unless a GPU answers from the same node and slot (gpuSlotLabel: a replaced board,
            // or the board back under another uuid). A dead exporter makes all its GPUs silent.
            // GPUMetricsAbsent and the dashboards read this record instead of repeating it.
            record: r.absent,
            expr: |||
              0 * (
                %(silentLast)s{%(exp)s}
                unless on (%(nodeLabel)s, %(gpuSlotLabel)s)
                gpu_up{%(exp)s, %(gpuSlotLabel)s!=""}
              )
            ||| % (vars { silentLast: r.silentLast }),
          },
          {
            // GPUs whose overall score is unknown, as 0 with dimension="overall": the silent
            // ones, and those publishing a score that is not a finite number (a NaN from a
            // relabelled or foreign source; VictoriaMetrics drops NaN on ingestion, so there
            // such a GPU has no score at all). Averages and minimums add them as 0, so a GPU
            // that stops reporting pulls the mean down instead of leaving it. A GPU that
            // publishes no score (the health model off, or its collector failing, which
            // GPUExporterCollectorFailing reports) is not counted: a fleet without the health
            // series would otherwise read 0 everywhere. `>= bool 0` is 0 for a NaN (and 1 for
            // a finite score), so `== 0` keeps exactly the NaN scores, as 0, in one read.
            record: r.unknownScore,
            expr: |||
              label_replace(
                %(absent)s{%(exp)s}
                or
                (gpu_health_score{%(exp)s, dimension="overall"} >= bool 0) == 0,
                "dimension", "overall", "", ""
              )
            ||| % vars,
          },
          {
            // Every GPU's overall score: finite scores as published, unknown ones (silent, NaN)
            // as 0, one series per GPU with dimension="overall". The dashboards' health panels
            // (mean, distribution, by model, per datacenter and rack) read it: joining the
            // three on uuid at every step of a 24-hour range took 25 s to over 30 s at 10,000
            // GPUs (docs/scaling.md), once per evaluation here it is one instant join. The
            // silent record is joined as well, so a silent GPU counts as soon as that record
            // has it, not an evaluation later through the unknown record (on vmalert, which
            // reads records back through the remote storage, each record of a chain lags one
            // evaluation: a GPU gone silent is missing here for up to two).
            record: r.overallScore,
            expr: |||
              gpu_health_score{%(exp)s, dimension="overall"} >= 0
              or on (uuid)
              %(unknownScore)s{%(exp)s}
              or on (uuid)
              label_replace(%(absent)s{%(exp)s}, "dimension", "overall", "", "")
            ||| % vars,
          },
        ],
      },
      {
        // The coverage panels' expected GPUs, in a group of their own: the record reads a day
        // of gpu_info (the costliest read of the mixin at 10,000 GPUs), which must not delay
        // the per-GPU records the alerts read.
        name: 'gpu-health-coverage.rules',
        rules: [
          {
            // GPU slots seen within coverageLookback, value 1: one series per exporter, node,
            // slot (gpuSlotLabel) and model, so an upgrade (new driver or VBIOS labels on
            // gpu_info) or a board replaced in its slot is still one slot expected. Read by
            // the dashboards' coverage panels, which at 10,000 GPUs timed out reading gpu_info
            // over the lookback at every step (docs/scaling.md).
            record: r.slotsSeen,
            expr: |||
              max without (%(dropFromSlot)s) (max_over_time(gpu_info{%(exp)s}[%(coverageLookback)s]))
            ||| % (vars { dropFromSlot: join([l for l in c.gpuLabels if l != c.gpuSlotLabel] + c.gpuInfoLabels) }),
          },
          {
            // Distinct slots per node (job and external labels kept): a slot two exporters
            // (an address change) or two models (a baseboard swapped for another model)
            // reported within the lookback counts once. A target label that changes with an
            // exporter's restart (a `pod` label the scrape config does not drop) splits a node
            // into a series per value for the lookback, so the panel takes the largest per
            // cluster and node. The coverage-by-node range panel reads it: at 10,000 GPUs
            // counting the slot record per node at every step took 6.4 s of the panel's 17 s
            // over 24 hours (docs/scaling.md).
            record: r.nodeSlotsSeen,
            expr: |||
              count without (%(gpuSlotLabel)s) (max without (instance, %(modelLabel)s) (%(slotsSeen)s{%(exp)s}))
            ||| % (vars { slotsSeen: r.slotsSeen }),
          },
          {
            // The models each node (and exporter) reported within the lookback, value 1.
            record: r.nodeModelsSeen,
            expr: |||
              max without (%(gpuSlotLabel)s) (%(slotsSeen)s{%(exp)s})
            ||| % (vars { slotsSeen: r.slotsSeen }),
          },
        ],
      },
      {
        name: 'gpu-health-node.rules',
        rules: [
          {
            // Health aggregates (node, model, fleet) count every GPU whose score is unknown
            // (silent, NaN, none) as 0 and ignore NaN scores, so a GPU that stops reporting
            // pulls them down instead of dropping out, and one NaN cannot make them NaN.
            record: 'node:gpu_health_score:min',
            expr: 'min without (%(toNode)s) (%(overallScore)s)' % vars,
          },
          {
            record: 'node:gpu_health_score:avg',
            expr: 'avg without (%(toNode)s) (%(overallScore)s)' % vars,
          },
          {
            // GPUs answering (numerator) and GPUs known (denominator), kept apart on purpose.
            record: r.nodeUp,
            expr: 'sum without (%(toNode)s) (gpu_up{%(exp)s})' % vars,
          },
          {
            record: 'node:gpu_up:count',
            expr: 'count without (%(toNode)s) (gpu_up{%(exp)s})' % vars,
          },
          {
            // When each (instance, node) pair last published gpu_up, as a value (one series per
            // node), so GPUExporterDown can name the node an instance reported most recently
            // (an IP:port reused by another host, a renamed host) without a per-GPU 6h range.
            record: r.nodeLastSeen,
            expr: 'max without (%(toNode)s) (timestamp(gpu_up{%(exp)s}))' % vars,
          },
          {
            record: 'node_xid:gpu_xid_errors:increase%(xidWindow)s' % c,
            expr: 'sum without (%(toNode)s) (%(rec)s)' % (vars { rec: r.xid }),
          },
          {
            record: 'node_type:gpu_ecc_errors:rate%(rateInterval)s' % c,
            expr: 'sum without (%(toNode)s) (%(rec)s)' % (vars { rec: r.ecc }),
          },
        ],
      },
      {
        name: 'gpu-health-fleet.rules',
        rules: [
          {
            record: 'model:gpu_health_score:avg',
            expr: 'avg without (%(toModel)s) (%(overallScore)s)' % vars,
          },
          {
            record: 'model:gpu_health_score:min',
            expr: 'min without (%(toModel)s) (%(overallScore)s)' % vars,
          },
          {
            record: 'fleet:gpu_health_score:avg',
            expr: 'avg without (%(toFleet)s) (%(overallScore)s)' % vars,
          },
          {
            // GPUs per grade (gpu_health_grade is 1 on the current grade only), plus
            // grade="silent" for the silent GPUs (absent record), which publish no grade.
            record: 'model_grade:gpu_health_grade:sum',
            expr: 'sum without (%(toModel)s) (%(grades)s)' % vars,
          },
          {
            record: 'fleet_grade:gpu_health_grade:sum',
            expr: 'sum without (%(toFleet)s) (%(grades)s)' % vars,
          },
          {
            record: 'fleet:gpu_up:sum',
            expr: 'sum without (%(toFleet)s) (gpu_up{%(exp)s})' % vars,
          },
          {
            record: 'fleet:gpu_up:count',
            expr: 'count without (%(toFleet)s) (gpu_up{%(exp)s})' % vars,
          },
          {
            // GPUMassFailure's burst: GPUs that stopped answering within massFailureWindow.
            // Recorded so the alert can hold the burst for massFailureHold cheaply.
            record: r.lostBurst,
            expr: $.gpuHealthExprs.lostBurst,
          },
          {
            // The burst's members (GPUs by uuid, exporters by instance) while it is at or over
            // massFailureGpus, recorded so GPUMassFailureMember holds each for massFailureHold.
            record: r.burstMembers,
            expr: $.gpuHealthExprs.burstMembers,
          },
          {
            record: 'fleet_xid:gpu_xid_errors:increase%(xidWindow)s' % c,
            expr: 'sum without (%(toFleet)s) (%(rec)s)' % (vars { rec: r.xid }),
          },
          {
            record: 'model_type:gpu_ecc_errors:rate%(rateInterval)s' % c,
            expr: 'sum without (%(toModel)s) (%(rec)s)' % (vars { rec: r.ecc }),
          },
          {
            record: 'fleet_type:gpu_ecc_errors:rate%(rateInterval)s' % c,
            expr: 'sum without (%(toFleet)s) (%(rec)s)' % (vars { rec: r.ecc }),
          },
          {
            // Average throttle fraction per reason across the model's GPUs.
            record: 'model_reason:gpu_clock_event_active:avg_avg_over_time%(rateInterval)s' % c,
            expr: 'avg without (%(toModel)s) (%(rec)s)' % (vars { rec: r.throttle }),
          },
          {
            record: 'fleet_reason:gpu_clock_event_active:avg_avg_over_time%(rateInterval)s' % c,
            expr: 'avg without (%(toFleet)s) (%(rec)s)' % (vars { rec: r.throttle }),
          },
        ],
      },
    ] + (
      if c.scorerEnabled then [
        {
          name: 'gpu-health-scorer.rules',
          rules: [
            {
              // Expected number of failures within each horizon (sum of probabilities).
              record: 'fleet_horizon:gpu_failure_probability:sum',
              expr: 'sum without (%(toFleet)s) (gpu_failure_probability{%(sco)s})' % vars,
            },
            {
              record: 'model_horizon:gpu_failure_probability:sum',
              expr: 'sum without (%(toModel)s) (gpu_failure_probability{%(sco)s})' % vars,
            },
            {
              // The riskiest GPU of each node.
              record: 'node_horizon:gpu_failure_probability:max',
              expr: 'max without (instance, %(toNode)s) (gpu_failure_probability{%(sco)s})' % vars,
            },
            {
              // Fleet NPV of each course of action.
              record: 'fleet_action:gpu_npv:sum',
              expr: 'sum without (%(toFleet)s) (gpu_npv{%(sco)s})' % vars,
            },
            {
              record: 'fleet:gpu_residual_value:sum',
              expr: 'sum without (%(toFleet)s) (gpu_residual_value{%(sco)s})' % vars,
            },
            {
              record: 'model:gpu_residual_value:sum',
              expr: 'sum without (%(toModel)s) (gpu_residual_value{%(sco)s})' % vars,
            },
            {
              // GPUs per recommended action.
              record: 'fleet_action:gpu_recommended_action:sum',
              expr: 'sum without (%(toFleet)s) (gpu_recommended_action{%(sco)s})' % vars,
            },
            // Expected failures by place and owner, from the scorer's asset inventory
            // (gpu_asset_info): the datacenter -> rack drill-down and per-team planning.
            {
              record: 'datacenter_horizon:gpu_failure_probability:sum',
              expr: 'sum without (%(toFleet)s) (gpu_failure_probability{%(sco)s} * on (uuid) group_left (datacenter) max by (uuid, datacenter) (gpu_asset_info{%(sco)s}))' % vars,
            },
            {
              record: 'rack_horizon:gpu_failure_probability:sum',
              expr: 'sum without (%(toFleet)s) (gpu_failure_probability{%(sco)s} * on (uuid) group_left (datacenter, row, rack) max by (uuid, datacenter, row, rack) (gpu_asset_info{%(sco)s}))' % vars,
            },
            {
              record: 'team_horizon:gpu_failure_probability:sum',
              expr: 'sum without (%(toFleet)s) (gpu_failure_probability{%(sco)s} * on (uuid) group_left (team) max by (uuid, team) (gpu_asset_info{%(sco)s}))' % vars,
            },
          ],
        },
      ] else []
    ),
  },
}
