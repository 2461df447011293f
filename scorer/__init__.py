"""The scorer sidecar: failure prediction and fleet economics from Prometheus history."""
