"""The GPU health exporter: backends, metric catalogue, health model and HTTP exposition."""
