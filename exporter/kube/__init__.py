"""Kubernetes integration for the exporter: which pod holds which GPU (kubelet pod-resources)."""
