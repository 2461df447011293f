"""The HTTP server and exporter-toolkit web configuration shared by the exporter and the scorer."""
