// A small plain-jsonnet dashboard builder (grafonnet cannot be vendored here).
//
// It emits Grafana's classic dashboard JSON model (schemaVersion 39): `panels` with `gridPos` on
// the 24-column grid, Prometheus targets bound to the `datasource` variable, and a unit plus
// thresholds on every panel so that no panel ever shows a bare number.
{
  datasource:: { type: 'prometheus', uid: '${datasource}' },

  // Threshold steps: base colour first, then [value, colour] pairs in rising order.
  thresholds(base='green', steps=[]):: {
    mode: 'absolute',
    steps: [{ color: base, value: null }] + [{ color: s[1], value: s[0] } for s in steps],
  },

  // Higher is worse (temperatures, error rates).
  rising(warn, crit):: self.thresholds('green', [[warn, 'orange'], [crit, 'red']]),
  // Lower is worse (health score, coverage).
  falling(crit, warn):: self.thresholds('red', [[crit, 'orange'], [warn, 'green']]),
  // No judgement: a neutral colour.
  neutral:: self.thresholds('blue'),

  target(expr, legend='', instant=false, format='time_series'):: {
    datasource: $.datasource,
    expr: expr,
    legendFormat: legend,
    instant: instant,
    range: !instant,
    format: format,
  },

  // Instant query shown as a table (one row per series, labels as columns).
  tableTarget(expr):: $.target(expr, instant=true, format='table'),

  panel(type, title, description, targets, unit, thresholds, w, h):: {
    type: type,
    title: title,
    description: description,
    datasource: $.datasource,
    targets: [
      targets[i] { refId: std.char(65 + i) }
      for i in std.range(0, std.length(targets) - 1)
    ],
    gridPos: { w: w, h: h },
    fieldConfig: {
      defaults: { unit: unit, thresholds: thresholds, color: { mode: 'thresholds' } },
      overrides: [],
    },
    options: {},
  },

  timeseries(title, description, targets, unit='short', thresholds=$.neutral, w=12, h=8, stack=false, min=null, max=null)::
    $.panel('timeseries', title, description, targets, unit, thresholds, w, h) {
      fieldConfig+: {
        defaults+: {
          color: { mode: 'palette-classic' },
          [if min != null then 'min']: min,
          [if max != null then 'max']: max,
          custom: {
            drawStyle: 'line',
            lineWidth: 1,
            fillOpacity: if stack then 60 else 10,
            showPoints: 'never',
            spanNulls: false,
            stacking: { mode: if stack then 'normal' else 'none', group: 'A' },
            thresholdsStyle: { mode: 'off' },
          },
        },
      },
      options: {
        legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
        tooltip: { mode: 'multi', sort: 'desc' },
      },
    },

  // Stats show the value now: instant queries, so a series that ended earlier in the range
  // (a GPU's previous grade, a removed GPU) cannot show up as a second value.
  stat(title, description, targets, unit='short', thresholds=$.neutral, w=6, h=4, decimals=null)::
    $.panel('stat', title, description, [t { instant: true, range: false } for t in targets], unit, thresholds, w, h) {
      fieldConfig+: { defaults+: { [if decimals != null then 'decimals']: decimals } },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        colorMode: 'value',
        graphMode: 'none',
        textMode: 'auto',
        justifyMode: 'auto',
        orientation: 'auto',
      },
    },

  bargauge(title, description, targets, unit='short', thresholds=$.neutral, w=12, h=8, min=0, max=null)::
    $.panel('bargauge', title, description, targets, unit, thresholds, w, h) {
      fieldConfig+: {
        defaults+: { [if min != null then 'min']: min, [if max != null then 'max']: max },
      },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        displayMode: 'gradient',
        orientation: 'horizontal',
        showUnfilled: true,
        valueMode: 'color',
      },
    },

  // A table of instant results; `columns` names the label columns to keep, in order, and
  // `links` maps a column name to a data link (e.g. to the GPU detail dashboard).
  table(title, description, targets, unit='short', thresholds=$.neutral, w=24, h=9, columns=[], rename={ Value: 'Value' }, hide=[], links={}, sortBy=null, sortDesc=false)::
    $.panel('table', title, description, targets, unit, thresholds, w, h) {
      fieldConfig+: {
        defaults+: { custom: { align: 'auto', cellOptions: { type: 'color-text' } } },
        overrides: [
          {
            matcher: { id: 'byName', options: name },
            properties: [{ id: 'links', value: [links[name]] }],
          }
          for name in std.objectFields(links)
        ],
      },
      options: {
        showHeader: true,
        cellHeight: 'sm',
        footer: { show: false, reducer: ['sum'], fields: '' },
        [if sortBy != null then 'sortBy']: [{ displayName: sortBy, desc: sortDesc }],
      },
      transformations: [
        // One row per GPU: the targets' value columns side by side, joined on their labels.
        { id: 'merge', options: {} },
        {
          id: 'organize',
          options: {
            excludeByName: { [n]: true for n in ['Time', '__name__', 'job', 'instance'] + hide },
            indexByName: { [columns[i]]: i for i in std.range(0, std.length(columns) - 1) },
            renameByName: rename,
          },
        },
      ],
    },

  // Distribution over time: Grafana buckets the raw series itself (calculate: true).
  heatmap(title, description, targets, unit='short', thresholds=$.neutral, w=12, h=8, yMin=null, yMax=null)::
    $.panel('heatmap', title, description, targets, unit, thresholds, w, h) {
      options: {
        calculate: true,
        calculation: { yBuckets: { mode: 'count', value: '10' } },
        color: { mode: 'scheme', scheme: 'Oranges', steps: 64, exponent: 0.5, fill: 'dark-orange' },
        yAxis: { unit: unit, [if yMin != null then 'min']: yMin, [if yMax != null then 'max']: yMax },
        cellGap: 1,
        legend: { show: true },
        tooltip: { mode: 'single', yHistogram: false },
      },
    },

  text(title, content, w=24, h=3):: {
    type: 'text',
    title: title,
    description: title,
    gridPos: { w: w, h: h },
    // Text panels carry no query, but keep a unit and thresholds so every panel has both.
    fieldConfig: { defaults: { unit: 'none', thresholds: $.neutral }, overrides: [] },
    options: { mode: 'markdown', content: content },
    targets: [],
  },

  // Left-to-right, wrapping at 24 columns; ids in order.
  layout(panels)::
    local step(acc, p) =
      local wrap = acc.x + p.gridPos.w > 24;
      local x = if wrap then 0 else acc.x;
      local y = if wrap then acc.y + acc.rowH else acc.y;
      {
        x: x + p.gridPos.w,
        y: y,
        rowH: if wrap then p.gridPos.h else std.max(acc.rowH, p.gridPos.h),
        out: acc.out + [p { id: std.length(acc.out) + 1, gridPos+: { x: x, y: y } }],
      };
    std.foldl(step, panels, { x: 0, y: 0, rowH: 0, out: [] }).out,

  datasourceVariable:: {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    current: {},
    hide: 0,
    refresh: 1,
    regex: '',
    options: [],
  },

  // A label_values() variable. `all` adds an "All" option that becomes the regex `.*`, which
  // also matches series without the label (so `cluster` works where it is not set).
  queryVariable(name, label, query, all=true, multi=true, hide=0):: {
    name: name,
    label: label,
    type: 'query',
    datasource: $.datasource,
    query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    definition: query,
    refresh: 2,  // on time-range change: GPUs come and go
    sort: 1,
    includeAll: all,
    multi: multi,
    [if all then 'allValue']: '.*',
    current: {},
    hide: hide,
    regex: '',
    options: [],
  },

  // An annotation from a PromQL query (e.g. XID events on one GPU).
  annotation(name, expr, title, text, color='red'):: {
    name: name,
    datasource: $.datasource,
    enable: true,
    hide: false,
    iconColor: color,
    expr: expr,
    step: '60s',
    titleFormat: title,
    textFormat: text,
    useValueForTime: false,
  },

  dashboard(uid, title, description, tags, variables, panels, links=[], annotations=[]):: {
    uid: uid,
    title: title,
    description: description,
    tags: tags,
    schemaVersion: 39,
    version: 1,
    editable: false,
    graphTooltip: 1,
    timezone: 'utc',
    refresh: '1m',
    time: { from: 'now-24h', to: 'now' },
    timepicker: {},
    fiscalYearStartMonth: 0,
    liveNow: false,
    weekStart: '',
    templating: { list: [$.datasourceVariable] + variables },
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ] + annotations,
    },
    links: links,
    panels: $.layout(panels),
  },

  // A link to a sibling dashboard that carries the time range and the variables along.
  dashboardLink(title, uid, tooltip):: {
    title: title,
    type: 'link',
    url: '/d/' + uid,
    tooltip: tooltip,
    icon: 'dashboard',
    includeVars: true,
    keepTime: true,
    asDropdown: false,
    targetBlank: false,
    tags: [],
  },
}
