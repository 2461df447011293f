// The gpu-health monitoring mixin (monitoring-mixins convention).
//
// Import it and override `_config` to fit your fleet:
//
//   (import 'gpu-health-mixin/mixin.libsonnet') + {
//     _config+:: { gpuExporterSelector: 'job="gpu"', runbookURLPattern: 'https://wiki/%s' },
//   }
//
// then render `prometheusRules`, `prometheusAlerts` and `grafanaDashboards`
// (`gpu-health generate` does that for this repository).
(import 'config.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'rules/scorer_history.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
