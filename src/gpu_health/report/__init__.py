"""``gpu-health report``: a fleet report from a Prometheus with our or dcgm-exporter's metrics.

The report is gathered with PromQL (:mod:`.gather`), then rendered as a terminal table
(:mod:`.text`) and as one self-contained HTML file with inline SVG charts (:mod:`.html`) that opens
without network access. The command itself is :mod:`.cli`.
"""
