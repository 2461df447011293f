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
    // Each exporter's last-seen time per node it reported (GPUExporterDown names the newest).
    nodeLastSeen: 'node:gpu_up:last_timestamp',
    // GPUs whose every reading for gpuLostFor said down (GPUFallenOffBus latches them).
    downFor: 'gpu:gpu_up:down_for%(gpuLostFor)s' % c,
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
            // XID events per GPU and code in the window. The exporter creates every
            // catalogued code's counter at 0 as soon as it watches a GPU (and counts from the
            // kernel log since boot, so a restart neither loses nor repeats events), hence a
            // plain increase() sees the first event too; it also handles the counter resets
            // of an exporter restart without the kernel log. A code outside the catalogue is
            // still born with its first event and read 0 here until its second.
            record: r.xid,
            expr: |||
              increase(gpu_xid_errors_total{%(exp)s}[%(xidWindow)s])
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
            // NVLink errors per second by type, summed over the GPU's links.
            record: r.nvlink,
            expr: |||
              sum without (link) (rate(gpu_nvlink_errors_total{%(exp)s}[%(rateInterval)s]))
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
        ],
      },
      {
        name: 'gpu-health-node.rules',
        rules: [
          {
            record: 'node:gpu_health_score:min',
            expr: 'min without (%(toNode)s) (gpu_health_score{%(exp)s, dimension="overall"})' % vars,
          },
          {
            record: 'node:gpu_health_score:avg',
            expr: 'avg without (%(toNode)s) (gpu_health_score{%(exp)s, dimension="overall"})' % vars,
          },
          {
            // GPUs answering (numerator) and GPUs known (denominator), kept apart on purpose.
            record: 'node:gpu_up:sum',
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
            expr: 'avg without (%(toModel)s) (gpu_health_score{%(exp)s, dimension="overall"})' % vars,
          },
          {
            record: 'model:gpu_health_score:min',
            expr: 'min without (%(toModel)s) (gpu_health_score{%(exp)s, dimension="overall"})' % vars,
          },
          {
            record: 'fleet:gpu_health_score:avg',
            expr: 'avg without (%(toFleet)s) (gpu_health_score{%(exp)s, dimension="overall"})' % vars,
          },
          {
            // GPUs per grade (gpu_health_grade is 1 on the current grade only).
            record: 'model_grade:gpu_health_grade:sum',
            expr: 'sum without (%(toModel)s) (gpu_health_grade{%(exp)s})' % vars,
          },
          {
            record: 'fleet_grade:gpu_health_grade:sum',
            expr: 'sum without (%(toFleet)s) (gpu_health_grade{%(exp)s})' % vars,
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
