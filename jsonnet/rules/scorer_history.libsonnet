// The series the scorer reads, sampled every 5 minutes for its long windows.
//
// Every scorer feature is a range function over 1 hour to 30 days, so on every run Prometheus
// reads every raw sample in those windows, and the cost follows the scrape interval (at 30 s,
// ten times the samples of 5-minute history). Each rule keeps one series as a 5-minute scrape
// would have seen it (every label kept, only the name changed); `gpu-health-scorer serve` and
// `score` read these instead of the raw series once they reach 30 days back and cover every GPU
// reporting now (`--history auto`, docs/scorer.md "Recorded history"). Backfill them over the
// history you already have with `promtool tsdb create-blocks-from rules`.
//
// The list is every metric name the scorer's queries select, in both schemas and under both of
// dcgm-exporter's names for a renamed field (tests/scorer/test_history_source.py checks that it
// is exactly that list).
{
  _config+:: {
    // Inserted between {} of each recorded series (empty: every job). The scorer reads every
    // job; narrow it only to leave out series the scorer must not see.
    scorerHistorySelector: '',
  },

  local c = $._config,
  local selector = if c.scorerHistorySelector == '' then '' else '{%s}' % c.scorerHistorySelector,

  scorerHistorySeries:: [
    'DCGM_FI_DEV_BOARD_LIMIT_VIOLATION',
    'DCGM_FI_DEV_BOARD_POWER_LIMIT_REQUESTED_WATTS',
    'DCGM_FI_DEV_BOARD_POWER_WATTS',
    'DCGM_FI_DEV_CLOCKS_EVENT_REASONS',
    'DCGM_FI_DEV_CLOCK_THROTTLE_REASONS',
    'DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS',
    'DCGM_FI_DEV_ECC_DBE_AGG_TOTAL',
    'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL',
    'DCGM_FI_DEV_ECC_SBE_AGG_TOTAL',
    'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL',
    'DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL',
    'DCGM_FI_DEV_GPU_TEMP',
    'DCGM_FI_DEV_GPU_TEMP_CELSIUS',
    'DCGM_FI_DEV_GPU_UTIL',
    'DCGM_FI_DEV_GPU_UTIL_RATIO',
    'DCGM_FI_DEV_MEMORY_CLOCK_HERTZ',
    'DCGM_FI_DEV_MEMORY_TEMP',
    'DCGM_FI_DEV_MEMORY_TEMP_CELSIUS',
    'DCGM_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_FAILED_EVENTS',
    'DCGM_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_SUCCESSFUL_EVENTS',
    'DCGM_FI_DEV_NVLINK_COUNT_LOCAL_LINK_INTEGRITY_ERRORS',
    'DCGM_FI_DEV_NVLINK_COUNT_RX_ERRORS',
    'DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL',
    'DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_TOTAL',
    'DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL',
    'DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_TOTAL',
    'DCGM_FI_DEV_NVLINK_INTEGRITY_ERROR_TOTAL',
    'DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL',
    'DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_TOTAL',
    'DCGM_FI_DEV_NVLINK_RECOVERY_FAILED_TOTAL',
    'DCGM_FI_DEV_NVLINK_RECOVERY_SUCCESSFUL_TOTAL',
    'DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL',
    'DCGM_FI_DEV_NVLINK_REPLAY_ERROR_TOTAL',
    'DCGM_FI_DEV_NVLINK_RX_ERROR_TOTAL',
    'DCGM_FI_DEV_PAGE_RETIRED_DBE_TOTAL',
    'DCGM_FI_DEV_PAGE_RETIRED_PENDING',
    'DCGM_FI_DEV_PAGE_RETIRED_SBE_TOTAL',
    'DCGM_FI_DEV_PCIE_REPLAY_COUNTER',
    'DCGM_FI_DEV_PCIE_REPLAY_TOTAL',
    'DCGM_FI_DEV_POWER_USAGE',
    'DCGM_FI_DEV_POWER_VIOLATION',
    'DCGM_FI_DEV_RETIRED_DBE',
    'DCGM_FI_DEV_RETIRED_SBE',
    'DCGM_FI_DEV_ROW_REMAP_CORRECTABLE_TOTAL',
    'DCGM_FI_DEV_ROW_REMAP_FAILED',
    'DCGM_FI_DEV_ROW_REMAP_FAILURE',
    'DCGM_FI_DEV_ROW_REMAP_UNCORRECTABLE_TOTAL',
    'DCGM_FI_DEV_SM_CLOCK',
    'DCGM_FI_DEV_SM_CLOCK_HERTZ',
    'DCGM_FI_DEV_THERMAL_VIOLATION',
    'DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS',
    'DCGM_FI_DEV_XID_ERROR',
    'DCGM_FI_DEV_XID_ERRORS',
    'DCGM_FI_PROF_DRAM_UTIL_RATIO',
    'DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO',
    'DCGM_FI_PROF_SM_OCCUPANCY_RATIO',
    'DCGM_FI_PROF_SM_UTIL_RATIO',
    'DCGM_FI_PROF_TENSOR_UTIL_RATIO',
    'gpu_clock_event_active',
    'gpu_clock_event_seconds_total',
    'gpu_clock_hertz',
    'gpu_ecc_errors_total',
    'gpu_health_score',
    'gpu_nvlink_errors_all_links_total',
    'gpu_nvlink_errors_total',
    'gpu_pcie_link_max_width',
    'gpu_pcie_link_width',
    'gpu_pcie_replays_total',
    'gpu_power_watts',
    'gpu_remapped_rows_total',
    'gpu_retired_pages',
    'gpu_row_remap_failed',
    'gpu_row_remap_pending',
    'gpu_temperature_celsius',
    'gpu_utilization_ratio',
    'gpu_xid_errors_all_codes_total',
    'gpu_xid_errors_total',
  ],

  // The series the scorer reads over windows of a week or more, sampled every hour: a week of
  // one series is then 168 samples whatever the scrape interval. Each is kept as its last
  // reading of the hour: counters lose nothing (each reading holds every rise before it). The
  // scorer leaves out `changes()` and dcgm-exporter's XID gauges, whose every value is an event.
  // tests/scorer/test_history_source.py checks that this list and the next are exactly the
  // names the scorer reads over such windows.
  scorerHourlySeries:: [
    'DCGM_FI_DEV_CLOCKS_EVENT_REASONS',
    'DCGM_FI_DEV_CLOCK_THROTTLE_REASONS',
    'DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS',
    'DCGM_FI_DEV_ECC_DBE_AGG_TOTAL',
    'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL',
    'DCGM_FI_DEV_ECC_SBE_AGG_TOTAL',
    'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL',
    'DCGM_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_FAILED_EVENTS',
    'DCGM_FI_DEV_NVLINK_COUNT_LINK_RECOVERY_SUCCESSFUL_EVENTS',
    'DCGM_FI_DEV_NVLINK_COUNT_LOCAL_LINK_INTEGRITY_ERRORS',
    'DCGM_FI_DEV_NVLINK_COUNT_RX_ERRORS',
    'DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL',
    'DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_TOTAL',
    'DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL',
    'DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_TOTAL',
    'DCGM_FI_DEV_NVLINK_INTEGRITY_ERROR_TOTAL',
    'DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL',
    'DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_TOTAL',
    'DCGM_FI_DEV_NVLINK_RECOVERY_FAILED_TOTAL',
    'DCGM_FI_DEV_NVLINK_RECOVERY_SUCCESSFUL_TOTAL',
    'DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL',
    'DCGM_FI_DEV_NVLINK_REPLAY_ERROR_TOTAL',
    'DCGM_FI_DEV_NVLINK_RX_ERROR_TOTAL',
    'DCGM_FI_DEV_PAGE_RETIRED_DBE_TOTAL',
    'DCGM_FI_DEV_PAGE_RETIRED_SBE_TOTAL',
    'DCGM_FI_DEV_PCIE_REPLAY_COUNTER',
    'DCGM_FI_DEV_PCIE_REPLAY_TOTAL',
    'DCGM_FI_DEV_POWER_VIOLATION',
    'DCGM_FI_DEV_RETIRED_DBE',
    'DCGM_FI_DEV_RETIRED_SBE',
    'DCGM_FI_DEV_ROW_REMAP_CORRECTABLE_TOTAL',
    'DCGM_FI_DEV_ROW_REMAP_FAILED',
    'DCGM_FI_DEV_ROW_REMAP_FAILURE',
    'DCGM_FI_DEV_ROW_REMAP_UNCORRECTABLE_TOTAL',
    'DCGM_FI_DEV_THERMAL_VIOLATION',
    'DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS',
    'gpu_clock_event_active',
    'gpu_clock_event_seconds_total',
    'gpu_ecc_errors_total',
    'gpu_nvlink_errors_all_links_total',
    'gpu_nvlink_errors_total',
    'gpu_pcie_replays_total',
    'gpu_remapped_rows_total',
    'gpu_retired_pages',
    'gpu_row_remap_failed',
    'gpu_row_remap_pending',
    'gpu_xid_errors_all_codes_total',
    'gpu_xid_errors_total',
  ],

  // The gauges the scorer averages over those windows, kept as each hour's average instead: a
  // pattern that repeats within the hour would bias an average of last readings by the minute
  // the group runs at.
  scorerHourlyAveraged:: [
    'DCGM_FI_DEV_BOARD_POWER_WATTS',
    'DCGM_FI_DEV_GPU_TEMP',
    'DCGM_FI_DEV_GPU_TEMP_CELSIUS',
    'DCGM_FI_DEV_GPU_UTIL',
    'DCGM_FI_DEV_GPU_UTIL_RATIO',
    'DCGM_FI_DEV_POWER_USAGE',
    'gpu_power_watts',
    'gpu_temperature_celsius',
    'gpu_utilization_ratio',
  ],

  // Rendered into a file of its own (rules/gpu-health-scorer-history.yaml) so that promtool
  // can backfill it alone.
  prometheusScorerHistoryRules+:: {
    groups+: if c.scorerEnabled then [
      {
        name: 'gpu-health-scorer-history.rules',
        interval: '5m',
        rules: [
          {
            record: 'gpu:%s:last_over_time5m' % name,
            expr: 'last_over_time(%s%s[5m])' % [name, selector],
          }
          for name in $.scorerHistorySeries
        ],
      },
      {
        name: 'gpu-health-scorer-hourly.rules',
        interval: '1h',
        rules: [
          {
            record: 'gpu:%s:last_over_time1h' % name,
            expr: 'last_over_time(%s%s[1h])' % [name, selector],
          }
          for name in $.scorerHourlySeries
        ] + [
          {
            record: 'gpu:%s:avg_over_time1h' % name,
            expr: 'avg_over_time(%s%s[1h])' % [name, selector],
          }
          for name in $.scorerHourlyAveraged
        ],
      },
    ] else [],
  },
}
