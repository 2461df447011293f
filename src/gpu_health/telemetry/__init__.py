"""The contract between exporter, simulator and scorer: readings and the metric catalogue."""
