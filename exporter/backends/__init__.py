"""Telemetry sources behind :class:`gpu_health.exporter.backend.Backend`, chosen by name."""
