// The three GPU health dashboards: fleet overview, one GPU in detail, risk and economics.
//
// Part of the mixin (jsonnet/mixin.libsonnet): selectors and thresholds come from `$._config`
// (jsonnet/config.libsonnet), recording-rule names from `$.gpuHealthRecords` (jsonnet/rules).
// The defaults below cover the dashboard-only knobs; `_config` overrides any of them. Queries
// read the exporter's and scorer's series by the names in src/gpu_health/telemetry/catalogue.py and
// scorer/catalogue.py (tests/mixin/test_dashboards_model.py checks every name).
local g = import 'lib.libsonnet';

{
  local defaults = {
    gpuExporterSelector: 'job="gpu-health-exporter"',
    gpuScorerSelector: 'job="gpu-health-scorer"',
    clusterLabel: 'cluster',
    // Show the cluster variable (it still works, as `.*`, where no series has the label).
    showMultiCluster: true,
    scorerEnabled: true,
    dashboardNamePrefix: 'GPU Health / ',
    dashboardTags: ['gpu-health-mixin'],
    dashboardRefresh: '1m',
    worstGpus: 10,
    riskTopGpus: 20,
    riskProbabilityThreshold: 0.2,
    // Where `gpu-health-scorer outcomes` lands: the node-exporter textfile collector by default,
    // so no job is assumed (empty matches every job); narrow it if several publish.
    predictionOutcomesSelector: '',
    currency: 'USD',
    dashboardUids: {
      overview: 'gpu-health-fleet-overview',
      detail: 'gpu-health-gpu-detail',
      risk: 'gpu-health-risk-economics',
    },
  },
  local c = defaults + $._config,
  // Recording-rule names come from jsonnet/rules (per-GPU rules keep every identity label, so
  // the node/model/gpu variables still filter them).
  local rec = $.gpuHealthRecords,

  // `{a, b, c}` from the non-empty matchers, so an empty selector in _config stays valid.
  local sel(matchers) = '{' + std.join(', ', [m for m in matchers if m != '']) + '}',
  local clusterM = '%s=~"$cluster"' % c.clusterLabel,
  // Fleet-wide series on the exporter, filtered by the cluster/node/model variables.
  local fleet(extra='') = sel([c.gpuExporterSelector, clusterM, 'node=~"$node"', 'model=~"$model"', extra]),
  // Per-node series (recording rules without the GPU and model labels).
  local nodeSel() = sel([c.gpuExporterSelector, clusterM, 'node=~"$node"']),
  // The one GPU of the detail dashboard.
  local one(extra='') = sel([c.gpuExporterSelector, clusterM, 'uuid="$gpu"', extra]),
  // Scorer series, filtered like the fleet.
  // A query's result without its metric name (arithmetic drops it; the values stay).
  local unnamed(expr) = '(%s) + 0' % expr,
  local scored(extra='') = sel([c.gpuScorerSelector, clusterM, 'node=~"$node"', 'model=~"$model"', extra]),
  // The riskiest GPUs by the scorer's own ranking (failed and absent first, ties by uuid), not
  // topk(): which of several equal probabilities topk() keeps is each engine's choice, and
  // VictoriaMetrics makes it anew in every query, so panels (and the queries of one table)
  // would list different GPUs.
  local riskiest = '(gpu_risk_rank%s <= %d)' % [scored('horizon="$horizon"'), c.riskTopGpus],
  local info = sel([c.gpuExporterSelector, clusterM]),

  local uids = c.dashboardUids,
  local detailLink = {
    title: 'Open this GPU in the detail dashboard',
    url: '/d/%s?var-gpu=${__value.raw}&var-node=${__data.fields.node}&${datasource:queryparam}&${__url_time_range}' % uids.detail,
  },

  local variables(withGpu=false, withModel=true) =
    [
      g.queryVariable('cluster', 'Cluster', 'label_values(gpu_info%s, %s)' % [sel([c.gpuExporterSelector]), c.clusterLabel], multi=false, hide=if c.showMultiCluster then 0 else 2),
      g.queryVariable('node', 'Node', 'label_values(gpu_info%s, node)' % info, multi=!withGpu),
    ]
    + (if withModel then [
         g.queryVariable('model', 'Model', 'label_values(gpu_info%s, model)' % sel([c.gpuExporterSelector, clusterM, 'node=~"$node"'])),
       ] else [])
    + (if withGpu then [
         g.queryVariable('gpu', 'GPU (uuid)', 'label_values(gpu_info%s, uuid)' % sel([c.gpuExporterSelector, clusterM, 'node=~"$node"']), all=false, multi=false),
       ] else []),

  local links(self_) = [
    g.dashboardLink(d[1], d[0], d[2])
    for d in [
      [uids.overview, 'Fleet overview', 'Grades, worst GPUs, XID/ECC activity, coverage'],
      [uids.detail, 'GPU detail', 'Every reading and the health breakdown of one GPU'],
      [uids.risk, 'Risk and economics', 'Failure probability, risk factors, NPV by action'],
    ]
    if d[0] != self_ && (c.scorerEnabled || d[0] != uids.risk)
  ],

  // Keeps only exporters (by instance) that served a selected GPU within the coverage lookback.
  local servingSelected = 'and on (instance) max by (instance) (%s%s)' % [rec.slotsSeen, fleet()],
  // Distinct GPU slots (node, PCI bus id) seen within the lookback, from the slot record (one
  // series per exporter, slot and model, whatever the driver or VBIOS versions or the board's
  // uuid): grouped by node and slot, a slot an exporter's new address or a new model also
  // reported is still one GPU expected.
  // Counted per cluster and node: two clusters may both name a node "a".
  local expected = 'count by (%(cl)s, node) (group by (%(cl)s, node, %(slot)s) (%(rec)s%(sel)s))' % { cl: c.clusterLabel, slot: $._config.gpuSlotLabel, rec: rec.slotsSeen, sel: fleet() },
  // 0 only where the slot record exists: without it (dashboards deployed before their rules,
  // or rendered with another coverageLookback than the rules) a missing count reads No data,
  // not a green 0.
  local zeroIfRecorded = '(vector(0) unless on () absent(%s%s))' % [rec.slotsSeen, sel([c.gpuExporterSelector])],
  // Per-GPU records (jsonnet/rules): silent GPUs (seen within gpuAbsentLookback, no gpu_up now,
  // not replaced in their slot; value 0) and GPUs whose overall score is unknown (silent or NaN;
  // value 0, dimension="overall"). Small (one series per such GPU), so panels read them
  // instead of a 6h range.
  local silent = '%s%s' % [rec.absent, fleet()],
  local unknown = '%s%s' % [rec.unknownScore, fleet()],
  // Every selected GPU's overall score: finite scores as published, unknown ones as 0 (the
  // per-GPU record, so a range panel does not join scores, unknown and silent GPUs per step).
  local overall = '%s%s' % [rec.overallScore, fleet()],
  // Reporting now (gpu_up == 1), 0 when nothing of the selection reports.
  local reporting = '(sum(gpu_up%s) or vector(0))' % fleet(),

  // A dead exporter publishes nothing but `up` 0: its answering and collector cells read 0
  // (from `up`) and its inventory is the last one it published within gpuAbsentLookback.
  local expSel(extra='') = sel([c.gpuExporterSelector, clusterM, extra]),
  local zeroPerExporter = '0 * max by (instance) (up%s)' % expSel(),
  // GPUs each exporter published within gpuAbsentLookback that publish nothing now and were not
  // replaced in their slot (the silent-GPU record, as the coverage, grade and worst-GPU panels
  // count them): one it dropped from its inventory while it runs, every GPU of a dead exporter.
  local silentPerExporter = 'count by (instance) (%s%s)' % [rec.absent, expSel()],
  // What it lists now (0 for a dead exporter) plus its silent GPUs; an exporter no longer
  // scraped at all (its target gone) keeps its silent GPUs.
  local inventory = '((sum by (instance) (gpu_exporter_gpus%s) or %s) + on (instance) (%s or %s) or %s)' % [expSel('state="inventory"'), zeroPerExporter, silentPerExporter, zeroPerExporter, silentPerExporter],
  local answering = '(sum by (instance) (gpu_exporter_gpus%s) or %s)' % [expSel('state="up"'), zeroPerExporter],
  // Datacenter -> rack drill-down (needs the scorer's gpu_asset_info, from its inventory).
  local assets(extra='') = 'max by (uuid, datacenter, row, rack) (gpu_asset_info%s)' % scored(extra),
  local placed(metric, by, extra='') = '%s * on (uuid) group_left (%s) %s' % [metric, by, assets(extra)],
  local drillLink(variable) = {
    title: 'Drill down into this %s' % variable,
    url: '/d/%s?var-%s=${__value.raw}&${datasource:queryparam}&${__url_time_range}' % [uids.overview, variable],
  },
  local placeVariables = if c.scorerEnabled then [
    g.queryVariable('datacenter', 'Datacenter', 'label_values(gpu_asset_info%s, datacenter)' % sel([c.gpuScorerSelector, clusterM])),
    g.queryVariable('rack', 'Rack', 'label_values(gpu_asset_info%s, rack)' % sel([c.gpuScorerSelector, clusterM, 'datacenter=~"$datacenter"'])),
  ] else [],
  local placePanels = if c.scorerEnabled then [
    g.table('Datacenters', 'GPUs, mean health and failures expected within 30 days per datacenter (from the asset inventory); click a datacenter to see its racks.', [
      g.tableTarget('count by (datacenter) (%s)' % assets()),
      g.tableTarget('avg by (datacenter) (%s)' % placed(overall, 'datacenter')),
      g.tableTarget('sum by (datacenter) (%s)' % placed('gpu_failure_probability%s' % scored('horizon="30d"'), 'datacenter')),
    ], unit='none', columns=['datacenter', 'Value #A', 'Value #B', 'Value #C'], rename={ 'Value #A': 'GPUs', 'Value #B': 'Mean health', 'Value #C': 'Expected failures 30d' }, links={ datacenter: drillLink('datacenter') }, sortBy='Expected failures 30d', sortDesc=true, w=12, h=8) {
      fieldConfig+: { defaults+: { decimals: 1 }, overrides+: [{ matcher: { id: 'byName', options: 'GPUs' }, properties: [{ id: 'decimals', value: 0 }] }] },
    },
    g.table('Racks in the selected datacenters', 'The same per rack of the datacenters chosen above; click a rack to list its GPUs.', [
      g.tableTarget('count by (datacenter, row, rack) (%s)' % assets('datacenter=~"$datacenter"')),
      g.tableTarget('avg by (datacenter, row, rack) (%s)' % placed(overall, 'datacenter, row, rack', 'datacenter=~"$datacenter"')),
      g.tableTarget('sum by (datacenter, row, rack) (%s)' % placed('gpu_failure_probability%s' % scored('horizon="30d"'), 'datacenter, row, rack', 'datacenter=~"$datacenter"')),
    ], unit='none', columns=['datacenter', 'row', 'rack', 'Value #A', 'Value #B', 'Value #C'], rename={ 'Value #A': 'GPUs', 'Value #B': 'Mean health', 'Value #C': 'Expected failures 30d' }, links={ rack: drillLink('rack') }, sortBy='Expected failures 30d', sortDesc=true, w=12, h=8) {
      fieldConfig+: { defaults+: { decimals: 1 }, overrides+: [{ matcher: { id: 'byName', options: 'GPUs' }, properties: [{ id: 'decimals', value: 0 }] }] },
    },
    g.table('GPUs in the selected racks', 'Every GPU of the racks chosen above with its health score; click a uuid for the detail dashboard.', [
      g.tableTarget(placed(overall, 'datacenter, row, rack', 'datacenter=~"$datacenter", rack=~"$rack"')),
    ], unit='none', thresholds=g.falling(50, 75), columns=['datacenter', 'row', 'rack', 'node', 'gpu', 'model', 'uuid', 'Value'], rename={ Value: 'Health score' }, hide=['dimension', 'pci_bus_id', 'cluster'], links={ uuid: detailLink }, sortBy='Health score', w=24, h=8),
  ] else [],

  // Live accuracy of past flags (`gpu-health-scorer outcomes`, docs/closed-loop.md): fleet-level
  // series per horizon and rolling window, so only the cluster variable applies; `max by` folds
  // the copies two textfile collectors (or a push and a scrape) would publish.
  local outcomeSel(extra='') = sel([c.predictionOutcomesSelector, clusterM, extra]),
  local byHorizon(metric, extra='') = 'max by (horizon, window) (%s%s)' % [metric, outcomeSel(extra)],

  grafanaDashboards+:: {
    'gpu-fleet-overview.json': g.dashboard(
      uids.overview,
      c.dashboardNamePrefix + 'Fleet overview',
      'Health of the whole GPU fleet: grades, the worst GPUs, XID and ECC activity, throttling and exporter coverage.',
      c.dashboardTags,
      variables() + placeVariables,
      [
        g.stat('GPUs reporting', 'GPUs whose last reading succeeded (gpu_up == 1); 0 when none of the selection reports.', [g.target(reporting, 'reporting')], unit='none', thresholds=g.thresholds('red', [[1, 'green']]), decimals=0, w=5),
        g.stat('GPUs missing', 'GPU slots (node, PCI bus id) seen in the last %s that have no GPU reporting now: lost (gpu_up 0), silent (series stopped, exporter dead) or removed within the lookback. Red from one.' % c.coverageLookback, [
          g.target('sum(%s) - %s or %s' % [expected, reporting, zeroIfRecorded], 'missing'),
        ], unit='none', thresholds=g.rising(1, 1), decimals=0, w=5),
        g.stat('Exporter coverage', 'GPUs reporting now over GPU slots seen in the last %s: green only at exactly 100%% (GPUs missing gives the count).' % c.coverageLookback, [
          g.target('%s / sum(%s) or vector(0)' % [reporting, expected], 'coverage'),
        ], unit='percentunit', thresholds=g.thresholds('red', [[1, 'green']]), decimals=2, w=5),
        g.stat('Mean health score', 'Average overall health score (0 dead, 100 perfect) over the selected GPUs, silent ones (series stopped within %s, exporter dead) and ones whose score is NaN counted as 0; 0 when nothing is selected.' % $._config.gpuAbsentLookback, [
          g.target('avg(%s) or vector(0)' % overall, 'mean'),
        ], unit='none', thresholds=g.falling(50, 75), decimals=1, w=5),
        g.stat('GPUs poor, critical or silent', 'GPUs in the two worst grade bands plus the silent ones (no series now, seen within %s): look at the worst-GPU table below.' % $._config.gpuAbsentLookback, [
          g.target('(sum(gpu_health_grade%s) or vector(0)) + (count(%s) or vector(0))' % [fleet('grade=~"poor|critical"'), silent], 'poor, critical or silent'),
        ], unit='none', thresholds=g.rising(1, 5), decimals=0, w=4),

        g.bargauge('GPUs per grade', 'How many GPUs sit in each grade band now; "silent": GPUs seen within %s that publish nothing now (lost series, dead exporter), not replaced in their slot.' % $._config.gpuAbsentLookback, [
          g.target('sum by (grade) (gpu_health_grade%s) or label_replace(count(%s) or vector(0), "grade", "silent", "", "")' % [fleet(), silent], '{{grade}}', instant=true),
        ], unit='none', w=8),
        g.heatmap('Health score distribution', 'How the overall scores of all selected GPUs spread over time (darker: more GPUs); silent GPUs and ones whose score is NaN at 0.', [
          g.target(overall, '{{node}}/{{gpu}}'),
        ], unit='none', w=16, yMin=0, yMax=100),

        g.table('Worst GPUs', 'The lowest overall health scores, silent GPUs (grade "silent") and GPUs whose score is NaN (grade "no score") at 0; click a uuid to open that GPU in the detail dashboard.', [
          g.tableTarget('bottomk(%d, (gpu_health_score%s >= 0) * on (job, instance, uuid) group_left (grade) (gpu_health_grade%s == 1) or on (uuid) label_replace(%s, "grade", "silent", "", "") or on (uuid) label_replace(%s, "grade", "no score", "", ""))' % [c.worstGpus, fleet('dimension="overall"'), fleet(), silent, unknown]),
        ], unit='none', thresholds=g.falling(50, 75), columns=['node', 'gpu', 'model', 'grade', 'uuid', 'Value'], rename={ Value: 'Health score' }, hide=['dimension', 'pci_bus_id'], links={ uuid: detailLink }, sortBy='Health score'),

        g.timeseries('Health score by model', 'Mean overall score per GPU model, silent GPUs and ones whose score is NaN counted as 0.', [
          g.target('avg by (model) (%s)' % overall, '{{model}}'),
        ], unit='none', thresholds=g.falling(50, 75), min=0, max=100),
        g.timeseries('XID events by node', 'XID events in the last %s, summed per node (each XID is a driver-reported GPU error).' % c.xidWindow, [
          g.target('sum by (node) (%s%s)' % [rec.xid, fleet()], '{{node}}'),
        ], unit='none', thresholds=g.rising(1, 10)),

        g.bargauge('XID events by model and code', 'XID events in the selected time range, per GPU model and XID code.', [
          g.target('sum by (model, xid) (increase(gpu_xid_errors_total%s[$__range]))' % fleet(), '{{model}} XID {{xid}}', instant=true),
        ], unit='none', thresholds=g.rising(1, 10)),
        g.bargauge('ECC errors by model', 'Volatile ECC errors in the selected time range, per GPU model and type (uncorrected errors are always serious).', [
          g.target('sum by (model, type) (increase(gpu_ecc_errors_total%s[$__range]))' % fleet('scope="volatile"'), '{{model}} {{type}}', instant=true),
        ], unit='none', thresholds=g.rising(1, 100)),

        g.timeseries('Corrected ECC errors by node', 'Corrected (single-bit) ECC errors per hour, per node: a rising rate is the early sign of HBM wear.', [
          g.target('sum by (node) (%s%s) * 3600' % [rec.ecc, fleet('type="corrected"')], '{{node}}'),
        ], unit='short', thresholds=g.rising(10, 100)),
        g.timeseries('Throttling by reason', 'Share of time clocks were held down, averaged over the selected GPUs, by policy (power cap is normal under load; thermal is not).', [
          g.target('avg by (reason) (%s%s)' % [rec.throttleSeconds, fleet()], '{{reason}}'),
        ], unit='percentunit', thresholds=g.rising(0.1, 0.5), min=0),

        // Per-node records (GPUs answering, slots seen, models seen), not the per-GPU series:
        // at 10,000 GPUs aggregating 10,000 series per node at every step was most of this
        // panel's cost. The ratio is over all of a node's GPUs; the model variable keeps the
        // nodes that reported a selected model within the lookback.
        g.timeseries('Exporter coverage by node', 'GPUs reporting over GPU slots seen in the last %s, per node (all its GPUs; the model variable picks the nodes): a drop means a GPU fell off the bus or an exporter stopped.' % c.coverageLookback, [
          g.target('(sum by (%(cl)s, node) (%(up)s%(node)s) or %(slots)s * 0) / %(slots)s and on (%(cl)s, node) %(models)s' % {
            cl: c.clusterLabel,
            up: rec.nodeUp,
            node: nodeSel(),
            // the largest per node: a node split by a target label that changed with a restart
            // holds each of its slots in every part that saw it (rules.libsonnet)
            slots: 'max by (%s, node) (%s%s)' % [c.clusterLabel, rec.nodeSlotsSeen, nodeSel()],
            models: '%s%s' % [rec.nodeModelsSeen, fleet()],
          }, '{{node}}'),
        ], unit='percentunit', thresholds=g.falling(0.9, 0.999), min=0, max=1),
        g.bargauge('GPUs throttled now, by reason', 'GPUs whose clocks a reason holds down right now (idle excluded).', [
          g.target('sum by (reason) (gpu_clock_event_active%s)' % fleet('reason!~"%s"' % c.benignClockEventReasons), '{{reason}}', instant=true),
        ], unit='none', thresholds=g.rising(1, 4)),
        g.table('Exporters', 'Each exporter serving the selected GPUs: scrape up, GPUs in its inventory (those it lists now plus those it published within %s that publish nothing now: dropped from its inventory while it runs, or every GPU of a dead exporter), GPUs answering, GPUs not answering (inventory less answering: lost, vanished or behind a dead exporter; red from one), and whether every collector succeeded on the last scrape; a dead exporter reads 0 answering and collectors 0.' % $._config.gpuAbsentLookback, [
          g.tableTarget('max by (instance) (up%s) %s' % [expSel(), servingSelected]),
          g.tableTarget('%s %s' % [inventory, servingSelected]),
          g.tableTarget('%s %s' % [answering, servingSelected]),
          g.tableTarget('(min by (instance) (gpu_exporter_scrape_collector_success%s) or %s) %s' % [expSel(), zeroPerExporter, servingSelected]),
          g.tableTarget('(%s - on (instance) %s) %s' % [inventory, answering, servingSelected]),
        ], unit='none', thresholds=g.thresholds('red', [[1, 'green']]), columns=['instance', 'Value #A', 'Value #B', 'Value #C', 'Value #E', 'Value #D'], rename={ 'Value #A': 'Up', 'Value #B': 'GPUs in inventory', 'Value #C': 'GPUs answering', 'Value #D': 'Collectors OK', 'Value #E': 'GPUs not answering' }, h=6) {
          fieldConfig+: { overrides+: [
            { matcher: { id: 'byName', options: name }, properties: [{ id: 'thresholds', value: g.neutral }] }
            for name in ['GPUs in inventory', 'GPUs answering']
          ] + [
            { matcher: { id: 'byName', options: 'GPUs not answering' }, properties: [{ id: 'thresholds', value: g.rising(1, 1) }] },
          ] },
          // instance is the exporter's address here, so keep it (the default hides it).
          transformations: [
            super.transformations[0],
            super.transformations[1] { options+: { excludeByName: { Time: true } } },
          ],
        },
      ] + placePanels,
      links=links(uids.overview),
    ) { refresh: c.dashboardRefresh },

    'gpu-detail.json': g.dashboard(
      uids.detail,
      c.dashboardNamePrefix + 'GPU detail',
      'One GPU: its health score and the penalties behind it, and every reading the exporter publishes; XIDs appear as annotations.',
      c.dashboardTags,
      variables(withGpu=true, withModel=false),
      [
        // A GPU whose series stopped (exporter dead, GPU gone) reads SILENT in red from the
        // silent-GPU record (within gpuAbsentLookback) and, past it, from noValue.
        g.stat('Health score', 'Overall health score (0 dead, 100 perfect); 0 when the GPU is silent or its score is NaN, SILENT when nothing of it is left.', [
          g.target('gpu_health_score%s >= 0 or on (uuid) %s%s' % [one('dimension="overall"'), rec.unknownScore, one()], 'overall'),
        ], unit='none', thresholds=g.falling(50, 75), decimals=0, w=4) {
          fieldConfig+: { defaults+: { noValue: 'SILENT' } },
        },
        g.stat('Grade', 'The grade band the score falls in; SILENT (red) when the GPU publishes nothing now.', [
          // A plain `or`, not `or on (uuid)`: VictoriaMetrics (before 1.108) answers the latter,
          // for about ten minutes after a GPU stops, with the stopped series' five grades
          // filled at 1 instead of "silent" (tests/mixin/test_dashboards_live.py).
          g.target('gpu_health_grade%s == 1 or label_replace(%s%s + 1, "grade", "silent", "", "")' % [one(), rec.absent, one()], '{{grade}}'),
        ], unit='none', thresholds=g.thresholds('red'), w=4) {
          options+: { textMode: 'name' },
          // The value is 1 whatever the grade: colour by the grade's name.
          fieldConfig+: {
            defaults+: { noValue: 'SILENT' },
            overrides+: [
              { matcher: { id: 'byName', options: grade[0] }, properties: [{ id: 'color', value: { mode: 'fixed', fixedColor: grade[1] } }] }
              for grade in [['excellent', 'green'], ['good', 'green'], ['fair', 'yellow'], ['poor', 'orange'], ['critical', 'red'], ['silent', 'red']]
            ],
          },
        },
        g.stat('Up', '1 when the GPU answered its last reading; 0 (LOST) when it is lost or fell off the bus; SILENT when its series stopped (exporter dead, GPU gone from the driver).', [
          g.target('gpu_up%s or on (uuid) %s%s - 1' % [one(), rec.absent, one()], 'up'),
        ], unit='none', thresholds=g.thresholds('red', [[1, 'green']]), w=4) {
          fieldConfig+: { defaults+: {
            noValue: 'SILENT',
            mappings: [{ type: 'value', options: { '-1': { text: 'SILENT', color: 'red' }, '0': { text: 'LOST', color: 'red' }, '1': { text: 'UP', color: 'green' } } }],
          } },
        },
        g.stat('Time since last XID', 'How long ago the last XID event was seen on this GPU.', [
          g.target('time() - gpu_last_xid_timestamp_seconds%s' % one(), 'since last XID'),
        ], unit='s', thresholds=g.thresholds('red', [[3600, 'orange'], [86400, 'green']]), w=4),
        g.stat('Lifetime ECC errors', "ECC error counts by type and scope (aggregate = over the board's life).", [
          g.target('gpu_ecc_errors_total%s' % one(), '{{type}} {{scope}}'),
        ], unit='none', thresholds=g.rising(1, 1000), w=8),

        g.table('Identity', 'Model, board and software versions (from gpu_info).', [
          g.tableTarget('gpu_info%s' % one()),
        ], columns=['node', 'gpu', 'model', 'uuid', 'pci_bus_id', 'serial', 'vbios_version', 'driver_version', 'cuda_driver_version'], hide=['Value'], h=4),

        g.bargauge('Health by dimension', 'Score per dimension (thermal, memory, power, performance, reliability).', [
          g.target('gpu_health_score%s' % one('dimension!="overall"'), '{{dimension}}', instant=true),
        ], unit='none', thresholds=g.falling(50, 75), min=0, max=100, w=8),
        g.table('Penalty breakdown', 'Points each reason costs in its dimension: the why behind the score.', [
          g.tableTarget('gpu_health_penalty%s > 0' % one()),
        ], unit='none', thresholds=g.rising(10, 30), columns=['dimension', 'reason', 'Value'], rename={ Value: 'Points' }, hide=['node', 'gpu', 'uuid', 'pci_bus_id', 'model', 'cluster'], w=8, h=8, sortBy='Points', sortDesc=true),
        g.timeseries('Health score over time', 'Overall and per-dimension scores.', [
          g.target('gpu_health_score%s' % one(), '{{dimension}}'),
        ], unit='none', thresholds=g.falling(50, 75), min=0, max=100, w=8),

        g.timeseries('Temperature', 'GPU die and memory temperature against the limits the device reports.', [
          g.target('gpu_temperature_celsius%s' % one(), '{{sensor}}'),
          g.target('gpu_temperature_threshold_celsius%s' % one('threshold=~"slowdown|memory_max"'), 'limit {{threshold}}'),
        ], unit='celsius', thresholds=g.rising(80, 90)),
        g.timeseries('Power', "Board power draw against the enforced and default limits; the energy counter's rate cross-checks the draw.", [
          g.target('gpu_power_watts%s' % one(), 'draw'),
          g.target('gpu_power_limit_watts%s' % one(), 'enforced limit'),
          g.target('gpu_power_default_limit_watts%s' % one(), 'default limit'),
          g.target('rate(gpu_energy_joules_total%s[$__rate_interval])' % one(), 'from energy counter'),
        ], unit='watt'),

        g.timeseries('Clocks', 'SM and memory clocks against their maximum.', [
          g.target('gpu_clock_hertz%s' % one(), '{{clock}}'),
          g.target('gpu_clock_max_hertz%s' % one(), 'max {{clock}}'),
        ], unit='hertz'),
        g.timeseries('Clock-event time by policy', 'Share of time clocks were held down, by policy (NVML violation counters).', [
          g.target('%s%s' % [rec.throttleSeconds, one()], '{{reason}}'),
        ], unit='percentunit', thresholds=g.rising(0.1, 0.5), min=0),

        g.timeseries('Active clock-event reasons', '1 while a reason holds the clocks down (sw_power_cap under full load is normal).', [
          g.target('gpu_clock_event_active%s' % one(), '{{reason}}'),
        ], unit='none', min=0, max=1),
        g.timeseries('Performance state and fan', 'P-state (0 fastest) and fan speed (absent on passively cooled boards).', [
          g.target('gpu_performance_state%s' % one(), 'P-state'),
          g.target('gpu_fan_speed_ratio%s * 100' % one(), 'fan %'),
        ], unit='none'),

        g.timeseries('Utilization', 'Share of time each engine was busy.', [
          g.target('gpu_utilization_ratio%s' % one(), '{{engine}}'),
        ], unit='percentunit', min=0, max=1),
        g.timeseries('Profiling activity', 'GPM/DCP activity ratios (SM, tensor, DRAM).', [
          g.target('gpu_profiling_ratio%s' % one(), '{{metric}}'),
        ], unit='percentunit', min=0, max=1),

        g.timeseries('Frame-buffer memory', 'Memory used, free, reserved and total.', [
          g.target('gpu_memory_used_bytes%s' % one(), 'used'),
          g.target('gpu_memory_free_bytes%s' % one(), 'free'),
          g.target('gpu_memory_reserved_bytes%s' % one(), 'reserved'),
          g.target('gpu_memory_total_bytes%s' % one(), 'total'),
        ], unit='bytes'),
        g.timeseries('ECC errors per hour', 'Volatile ECC errors per hour by type.', [
          g.target('%s%s * 3600' % [rec.ecc, one()], '{{type}}'),
        ], unit='short', thresholds=g.rising(10, 100)),

        g.timeseries('Row remapping and page retirement', 'HBM rows remapped to spares, pending/failed remaps (pending needs a reset, failed means replace), and retired pages on older boards.', [
          g.target('gpu_remapped_rows_total%s' % one(), 'remapped {{cause}}'),
          g.target('gpu_row_remap_pending%s' % one(), 'remap pending'),
          g.target('gpu_row_remap_failed%s' % one(), 'remap failed'),
          g.target('gpu_retired_pages%s' % one(), 'retired {{cause}}'),
          g.target('gpu_retired_pages_pending%s' % one(), 'retirement pending'),
        ], unit='none', thresholds=g.rising(1, 1)),
        g.timeseries('XID events', 'XID events per code, and per class and of all codes where there were any (fallen off the bus, uncontained ECC, ...), in the last %s (also shown as annotations).' % c.xidWindow, [
          g.target('%s%s' % [rec.xid, one()], 'XID {{xid}}'),
          g.target('increase(gpu_xid_class_errors_total%s[%s]) > 0' % [one(), c.xidWindow], 'class {{class}}'),
          g.target('increase(gpu_xid_errors_all_codes_total%s[%s]) > 0' % [one(), c.xidWindow], 'all codes'),
        ], unit='none', thresholds=g.rising(1, 1)),

        g.timeseries('PCIe link', 'Current link generation and width against their maximum (a drop means a degraded link).', [
          g.target('gpu_pcie_link_generation%s' % one(), 'generation'),
          g.target('gpu_pcie_link_max_generation%s' % one(), 'max generation'),
          g.target('gpu_pcie_link_width%s' % one(), 'width'),
          g.target('gpu_pcie_link_max_width%s' % one(), 'max width'),
        ], unit='none'),
        g.timeseries('PCIe traffic and replays', 'Throughput by direction; replays per second (link-level retries) on the right scale.', [
          g.target('gpu_pcie_throughput_bytes_per_second%s' % one(), '{{direction}}'),
          g.target('%s%s' % [rec.pcie, one()], 'replays/s'),
        ], unit='Bps') {
          fieldConfig+: { overrides+: [{ matcher: { id: 'byName', options: 'replays/s' }, properties: [{ id: 'unit', value: 'short' }, { id: 'custom.axisPlacement', value: 'right' }] }] },
        },

        g.timeseries('NVLink traffic', 'NVLink data rate by direction, all links.', [
          g.target('rate(gpu_nvlink_bytes_total%s[$__rate_interval])' % one(), '{{direction}}'),
        ], unit='Bps'),
        g.timeseries('NVLink errors', 'NVLink errors per second by type, summed over links, and per link where a link has any (which link is failing).', [
          g.target('rate(gpu_nvlink_errors_all_links_total%s[$__rate_interval])' % one(), '{{type}}'),
          g.target('sum by (link) (rate(gpu_nvlink_errors_total%s[$__rate_interval])) > 0' % one(), 'link {{link}}'),
        ], unit='short', thresholds=g.rising(0.01, 1)),

        g.timeseries('Exporter cache age', "Age of values served from the exporter's background poller, by poll group.", [
          g.target('gpu_cache_age_seconds%s' % one(), '{{group}}'),
        ], unit='s', thresholds=g.rising(30, 120)),
        g.stat('vGPU licence status', 'vGPU licence status as NVML reports it (absent on bare-metal boards).', [
          g.target('gpu_vgpu_license_status%s' % one(), 'licence'),
        ], unit='none', w=12, h=8),
      ],
      links=links(uids.detail),
      annotations=[
        // A count above the one an interval earlier marks an event. The subtraction reaches
        // back through the lookback window, so an XID that arrived while the exporter was not
        // scraped still marks the first sample after it (increase() needs two samples inside
        // the interval); increase() adds the events just after a counter reset; a code outside
        // the catalogue is born with its first event, so a non-zero series that did not exist
        // an interval ago counts too — a zero-born one at exporter start never does.
        g.annotation('XID events', '(gpu_xid_errors_total%s > 0 unless gpu_xid_errors_total%s offset $__interval) or (gpu_xid_errors_total%s - gpu_xid_errors_total%s offset $__interval > 0) or (increase(gpu_xid_errors_total%s[$__interval]) > 0)' % [one(), one(), one(), one(), one()], 'XID {{xid}}', 'XID {{xid}} on GPU {{gpu}} ({{node}})'),
      ],
    ) { refresh: c.dashboardRefresh },

    [if c.scorerEnabled then 'gpu-risk-economics.json']: g.dashboard(
      uids.risk,
      c.dashboardNamePrefix + 'Risk and economics',
      'Failure probability ranking, the features driving it, NPV of each course of action, recommended actions and the residual value of the fleet (from the scorer).',
      c.dashboardTags,
      variables() + [{
        name: 'horizon',
        label: 'Horizon',
        type: 'custom',
        query: '7d,30d,90d',
        current: { text: '30d', value: '30d', selected: true },
        options: [
          { text: '7d', value: '7d', selected: false },
          { text: '30d', value: '30d', selected: true },
          { text: '90d', value: '90d', selected: false },
        ],
        includeAll: false,
        multi: false,
        hide: 0,
      }],
      [
        g.stat('Expected failures', 'Sum of failure probabilities over the selected GPUs: failures to expect within the horizon.', [
          g.target('sum(gpu_failure_probability%s)' % scored('horizon="$horizon"'), 'expected failures'),
        ], unit='none', thresholds=g.rising(1, 5), decimals=2, w=4),
        g.stat('GPUs at risk', 'GPUs whose failure probability within the horizon exceeds %g.' % c.riskProbabilityThreshold, [
          g.target('count(gpu_failure_probability%s > %g) or vector(0)' % [scored('horizon="$horizon"'), c.riskProbabilityThreshold], 'at risk'),
        ], unit='none', thresholds=g.rising(1, 5), decimals=0, w=4),
        g.stat('Fleet residual value', 'Residual (book) value of the selected GPUs, adjusted by health; GPUs not valued (next panel) are not in it.', [
          g.target('sum(gpu_residual_value%s)' % scored('currency="%s"' % c.currency), 'residual value'),
        ], unit='currency' + c.currency, decimals=0, w=5),
        // The scorer's count of GPUs no economics entry matches, per model (a fleet-level series:
        // no node label). The node variable keeps the models scored on the selected nodes.
        g.stat('GPUs not valued', 'GPUs the economics cannot value, per model (gpu_scorer_econ_unvalued_gpus): no economics entry matches their model, so they have no NPV, no recommended action and no residual value, and the economics panels here leave them out. Red from one. To value them, add an entry for the model under models: to the YAML given with --econ.params (docs/economics.md). Counted per model over the whole fleet; the node variable keeps the models scored on the selected nodes. "all valued" 0 when there are none.', [
          g.target('sum by (model) (gpu_scorer_econ_unvalued_gpus%s) and on (model) group by (model) (gpu_state%s) or on () label_replace(vector(0), "model", "all valued", "", "")' % [sel([c.gpuScorerSelector, clusterM, 'model=~"$model"']), scored()], '{{model}}'),
        ], unit='none', thresholds=g.rising(1, 1), decimals=0, w=6) {
          // One value per model: the model names it, also when it is the only one.
          options+: { textMode: 'value_and_name' },
        },
        g.stat('Scorer results age', 'Time since the scorer last finished a run: stale results mean the scorer is stuck or down.', [
          g.target('time() - max(gpu_scorer_last_run_timestamp_seconds%s)' % sel([c.gpuScorerSelector, clusterM]), 'age'),
        ], unit='s', thresholds=g.rising(3600, 4 * 3600), w=5),

        g.table('Failure probability ranking', 'GPUs most likely to fail within the horizon, with their anomaly score; click a uuid for the detail dashboard.', [
          // Every query here drops its metric name (`unnamed`): Grafana's merge joins rows only
          // where all fields the queries share agree, before `organize` hides __name__, so four
          // queries keeping four names would show each GPU as four half-rows.
          g.tableTarget(unnamed('gpu_failure_probability%s and on (uuid) %s' % [scored('horizon="$horizon"'), riskiest])),
          g.tableTarget(unnamed('gpu_anomaly_score%s and on (uuid) %s' % [scored(), riskiest])),
          // The GPU's state next to its risk: failed and absent GPUs are "failed now" (P = 1), except
          // GPUs of a node that stopped reporting as a whole (no probability: "Down and silent GPUs"
          // lists them).
          g.tableTarget(unnamed('(gpu_state%s == 1) and on (uuid) %s' % [scored(), riskiest])),
          g.tableTarget(unnamed('gpu_state_age_seconds%s and on (uuid) %s' % [scored(), riskiest])),
          // The place in the scorer's ranking: the table's order (the API's and the report's).
          g.tableTarget(unnamed(riskiest)),
        ], unit='percentunit', thresholds=g.rising(0.05, 0.2), columns=['Value #E', 'node', 'gpu', 'model', 'uuid', 'state', 'Value #A', 'Value #B', 'Value #D'], rename={ 'Value #E': 'rank', 'Value #A': 'P(failure)', 'Value #B': 'Anomaly score', 'Value #D': 'Silent for' }, hide=['horizon', 'cluster', 'Value #C'], links={ uuid: detailLink }, sortBy='rank', sortDesc=false, w=14, h=10) {
          fieldConfig+: { overrides+: [
            { matcher: { id: 'byName', options: 'rank' }, properties: [{ id: 'unit', value: 'none' }, { id: 'decimals', value: 0 }] },
            { matcher: { id: 'byName', options: 'Anomaly score' }, properties: [{ id: 'unit', value: 'none' }, { id: 'decimals', value: 2 }] },
            { matcher: { id: 'byName', options: 'Silent for' }, properties: [{ id: 'unit', value: 's' }] },
          ] },
        },
        g.bargauge('Top risk factors', 'Features that push failure risk up across the selected GPUs (sum of positive SHAP contributions to the log-odds).', [
          g.target('topk(10, sum by (feature) (clamp_min(gpu_failure_risk_factor%s, 0)))' % scored('horizon="$horizon"'), '{{feature}}', instant=true),
        ], unit='none', thresholds=g.rising(1, 5), w=10, h=10),

        g.bargauge('GPU states', 'GPUs per state (healthy, degraded, failed, absent, replaced) from the scorer: failed = hard fault awaiting reset or repair, absent = no samples, replaced = a new UUID in the slot.', [
          g.target('sum by (state) (gpu_state%s)' % scored(), '{{state}}', instant=true),
        ], unit='none', w=24, h=5),
        // Failed and absent GPUs in a table of their own: the ranking joins on the failure
        // probability, and GPUs of a node that stopped reporting as a whole have none (NaN is
        // not published), so only this table lists them by name.
        g.table('Down and silent GPUs', 'GPUs that are failed (hard fault awaiting reset or repair) or absent (no samples), including every GPU of a node that stopped reporting as a whole, which has no failure probability and so is not in the ranking; "for" is the time since the GPU last reported. The scorer API (/api/v1/gpus) gives the reason.', [
          g.tableTarget('gpu_state%s == 1' % scored('state=~"failed|absent"')),
          // The same labels as the row above (the state joined in), so the two merge into one row.
          g.tableTarget('gpu_state_age_seconds%s * on (job, instance, uuid) group_left (state) (gpu_state%s == 1)' % [scored(), scored('state=~"failed|absent"')]),
        ], unit='s', columns=['node', 'gpu', 'model', 'uuid', 'state', 'Value #B'], rename={ 'Value #B': 'for' }, hide=['cluster', 'Value #A'], links={ uuid: detailLink }, sortBy='for', sortDesc=true, w=24, h=7),
        g.table('Time to failure', 'Time to failure of the riskiest GPUs at quantiles 0.1, 0.5 and 0.9 of the survival curve (0.1 to 0.9: an 80 % interval).', [
          g.tableTarget('gpu_time_to_failure_seconds%s and on (uuid) %s' % [scored(), riskiest]),
        ], unit='s', columns=['node', 'gpu', 'uuid', 'quantile', 'Value'], rename={ Value: 'time to failure' }, hide=['cluster'], links={ uuid: detailLink }, sortBy='time to failure', sortDesc=false, w=12, h=9),
        g.table('Most likely failure class', 'Per risky GPU: the failure class its evidence points to (memory, bus, nvlink, thermal_power, other) and its share of the risk; each class has a runbook (docs/runbooks).', [
          g.tableTarget('gpu_failure_class_probability%s and on (uuid) %s' % [scored(), riskiest]),
        ], unit='percentunit', columns=['node', 'gpu', 'uuid', 'class', 'Value'], rename={ Value: 'probability' }, hide=['cluster'], links={ uuid: detailLink }, sortBy='probability', sortDesc=true, w=12, h=9),

        g.bargauge('NPV by action', 'Fleet net present value of each course of action if applied to every selected GPU.', [
          g.target('sum by (action) (gpu_npv%s)' % scored('currency="%s"' % c.currency), '{{action}}', instant=true),
        ], unit='currency' + c.currency, min=null, w=8),
        g.bargauge('Recommended actions', 'How many GPUs the economic engine recommends to keep, repair (hard faults only), repurpose, sell or decommission.', [
          g.target('sum by (action) (gpu_recommended_action%s)' % scored(), '{{action}}', instant=true),
        ], unit='none', w=8),
        g.heatmap('Anomaly score distribution', 'Isolation-forest anomaly scores of the selected GPUs over time (1 = most unusual).', [
          g.target('gpu_anomaly_score%s' % scored(), '{{node}}/{{gpu}}'),
        ], unit='none', w=8, yMin=0, yMax=1),

        g.table('Recommended actions by NPV gain', 'Per GPU whose recommended action is worth more than keeping it as is: the action and how much more.', [
          // Only GPUs an action beats keeping (> 0): every kept GPU ties at 0, and which of them
          // topk() would show is each engine's choice.
          g.tableTarget('topk(%d, (gpu_npv%s * on (instance, uuid, action) group_left () (gpu_recommended_action%s == 1)) - on (instance, uuid) group_left () gpu_npv%s > 0)' % [c.riskTopGpus, scored('currency="%s"' % c.currency), scored(), scored('currency="%s", action="keep"' % c.currency)]),
        ], unit='currency' + c.currency, columns=['node', 'gpu', 'model', 'uuid', 'action', 'Value'], rename={ Value: 'NPV gain vs keep' }, hide=['currency', 'cluster'], links={ uuid: detailLink }, sortBy='NPV gain vs keep', sortDesc=true, w=24, h=9),

        // One column per decision input; each is its own metric in base units (scorer/econ/metrics.py).
        local inputs = [
          // [column, metric, extra selector, unit]
          ['Age', 'gpu_econ_age_seconds', '', 's'],
          ['Utilisation', 'gpu_econ_utilisation_ratio', '', 'percentunit'],
          ['Power', 'gpu_econ_power_watts', '', 'watt'],
          ['P(failure 7d)', 'gpu_econ_failure_probability_ratio', 'horizon="7d"', 'percentunit'],
          ['P(failure 30d)', 'gpu_econ_failure_probability_ratio', 'horizon="30d"', 'percentunit'],
          ['Monthly hazard', 'gpu_econ_monthly_hazard_ratio', '', 'percentunit'],
          ['Health', 'gpu_econ_health_score', '', 'none'],
          ['Hard fault', 'gpu_econ_hard_fault', '', 'none'],
          ['Rental price per hour', 'gpu_econ_rental_price_per_hour', 'currency="%s"' % c.currency, 'currency' + c.currency],
          ['Energy price per kWh', 'gpu_econ_energy_price_per_kwh', 'currency="%s"' % c.currency, 'currency' + c.currency],
          ['Purchase price', 'gpu_econ_purchase_price', 'currency="%s"' % c.currency, 'currency' + c.currency],
          ['Warranty left', 'gpu_econ_warranty_remaining_seconds', '', 's'],
          ['SLA penalty per failure', 'gpu_econ_sla_penalty', 'currency="%s"' % c.currency, 'currency' + c.currency],
        ];
        local valueColumn(i) = 'Value #' + std.char(65 + i);
        g.table('Decision inputs of the riskiest GPUs', 'What the economic engine decided from, per GPU (after defaults were applied): age, utilisation, power, failure probabilities, hazard, health, prices.', [
          // `max without` drops the horizon/currency label so that every column joins on the GPU.
          g.tableTarget('max without (horizon, currency) (%s%s) and on (uuid) %s' % [input[1], scored(input[2]), riskiest])
          for input in inputs
        ], unit='none', columns=['node', 'gpu', 'model', 'uuid'] + [valueColumn(i) for i in std.range(0, std.length(inputs) - 1)], rename={ [valueColumn(i)]: inputs[i][0] for i in std.range(0, std.length(inputs) - 1) }, hide=['cluster'], links={ uuid: detailLink }, w=24, h=9) {
          fieldConfig+: {
            defaults+: { decimals: 2 },
            overrides+: [
              { matcher: { id: 'byName', options: input[0] }, properties: [{ id: 'unit', value: input[3] }] }
              for input in inputs
            ],
          },
        },

        g.timeseries('Fleet residual value by model', 'Residual value of the selected GPUs per model over time.', [
          g.target('sum by (model) (gpu_residual_value%s)' % scored('currency="%s"' % c.currency), '{{model}}'),
        ], unit='currency' + c.currency, stack=true),
        g.timeseries('Expected failures by model', 'Sum of failure probabilities per model over time.', [
          g.target('sum by (model) (gpu_failure_probability%s)' % scored('horizon="$horizon"'), '{{model}}'),
        ], unit='none', thresholds=g.rising(1, 5)),

        g.table('Failure plan', 'Failures to expect in the next 30 and 90 days per model, datacenter and team, the central 80 % interval of the count (exact Poisson-binomial), spares to stock and GPU-hours at risk (gpu-health plan; fleet-level, so the node and model variables do not apply).', [
          g.tableTarget('max without (instance) (gpu_plan_expected_failures%s)' % sel([c.gpuScorerSelector, clusterM])),
          g.tableTarget('max without (instance, bound) (gpu_plan_failures_interval%s)' % sel([c.gpuScorerSelector, clusterM, 'bound="lower"'])),
          g.tableTarget('max without (instance, bound) (gpu_plan_failures_interval%s)' % sel([c.gpuScorerSelector, clusterM, 'bound="upper"'])),
          g.tableTarget('max without (instance, service_level) (gpu_plan_spares%s)' % sel([c.gpuScorerSelector, clusterM])),
          g.tableTarget('max without (instance) (gpu_plan_capacity_at_risk_gpu_hours%s)' % sel([c.gpuScorerSelector, clusterM])),
        ], unit='none', columns=['dimension', 'group', 'horizon', 'Value #A', 'Value #B', 'Value #C', 'Value #D', 'Value #E'], rename={ 'Value #A': 'Expected', 'Value #B': 'Lower (80 %)', 'Value #C': 'Upper (80 %)', 'Value #D': 'Spares', 'Value #E': 'GPU-hours at risk' }, hide=['cluster'], sortBy='Expected', sortDesc=true, w=24, h=10) {
          fieldConfig+: { defaults+: { decimals: 1 } },
        },
        g.table('Assets of the riskiest GPUs', 'Where the riskiest GPUs sit and who owns them (asset inventory), with their age and the warranty left, in days (negative: ended).', [
          g.tableTarget('gpu_age_seconds%s / 86400 * on (job, instance, uuid) group_left (datacenter, row, rack, team, sla_tier) gpu_asset_info%s and on (uuid) %s' % [scored(), scored(), riskiest]),
          g.tableTarget('gpu_warranty_remaining_seconds%s / 86400 * on (job, instance, uuid) group_left (datacenter, row, rack, team, sla_tier) gpu_asset_info%s and on (uuid) %s' % [scored(), scored(), riskiest]),
        ], unit='none', thresholds=g.falling(0, 30), columns=['node', 'gpu', 'model', 'uuid', 'datacenter', 'row', 'rack', 'team', 'sla_tier', 'Value #A', 'Value #B'], rename={ 'Value #A': 'Age (days)', 'Value #B': 'Warranty left (days)' }, hide=['cluster'], links={ uuid: detailLink }, w=16, h=9) {
          fieldConfig+: { defaults+: { decimals: 0 } },
        },
        g.table('Market prices in use', "Resale quotes from the operator's price table (--market.prices): the date shows how fresh the price behind each sell recommendation is.", [
          g.tableTarget('max without (instance) (gpu_market_price%s)' % sel([c.gpuScorerSelector, clusterM])),
        ], unit='currency' + c.currency, columns=['model', 'condition', 'date', 'Value'], rename={ Value: 'Price' }, hide=['currency', 'cluster'], w=8, h=9),

        // Live accuracy of past flags: one row, per horizon and rolling window.
        g.table('Prediction accuracy (live)', 'How past flags turned out against the failure ledger, per horizon and rolling window (gpu-health-scorer outcomes): precision, recall, median lead time from the first flag to the failure, and the GPU-time rows behind them.', [
          g.tableTarget(byHorizon('gpu_prediction_precision')),
          g.tableTarget(byHorizon('gpu_prediction_recall')),
          g.tableTarget(byHorizon('gpu_prediction_lead_time_days')),
          g.tableTarget(byHorizon('gpu_prediction_outcomes', 'outcome="true_positive"')),
          g.tableTarget(byHorizon('gpu_prediction_outcomes', 'outcome="false_positive"')),
          g.tableTarget(byHorizon('gpu_prediction_outcomes', 'outcome="false_negative"')),
        ], unit='none', columns=['horizon', 'window', 'Value #A', 'Value #B', 'Value #C', 'Value #D', 'Value #E', 'Value #F'], rename={ 'Value #A': 'Precision', 'Value #B': 'Recall', 'Value #C': 'Lead time (days)', 'Value #D': 'True positives', 'Value #E': 'False positives', 'Value #F': 'False negatives' }, hide=['cluster'], w=14, h=7) {
          fieldConfig+: {
            defaults+: { decimals: 0 },
            overrides+: [
              { matcher: { id: 'byName', options: name }, properties: [{ id: 'unit', value: 'percentunit' }, { id: 'decimals', value: 1 }] }
              for name in ['Precision', 'Recall']
            ] + [{ matcher: { id: 'byName', options: 'Lead time (days)' }, properties: [{ id: 'decimals', value: 1 }] }],
          },
        },
        g.timeseries('Live precision and recall by horizon', 'Precision and recall of past flags over time, per horizon: a falling precision is what GPUScorerPrecisionLow alerts on.', [
          g.target(byHorizon('gpu_prediction_precision'), 'precision {{horizon}} ({{window}})'),
          g.target(byHorizon('gpu_prediction_recall'), 'recall {{horizon}} ({{window}})'),
        ], unit='percentunit', min=0, max=1, w=10, h=7),
      ],
      links=links(uids.risk),
    ) { refresh: c.dashboardRefresh },
  },
}
