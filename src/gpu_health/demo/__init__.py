"""``gpu-health demo``: the whole stack on a simulated fleet, on this machine, in one command.

Backfilled history, a real Prometheus with the generated rules, a real Alertmanager delivering to
a local notification sink (:mod:`.notify_sink`), the exporter continuing the simulated fleet live,
the scorer, and a terminal summary (:mod:`.cli`). Every process it starts is stopped when it stops.
"""
