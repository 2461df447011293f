"""gpu-health-monitor: Prometheus-native GPU health, failure prediction and fleet economics."""

__version__ = "0.1.0"
