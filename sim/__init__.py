"""A simulated GPU fleet: one model, two drivers.

The *live* driver (:mod:`gpu_health.sim.live`) serves the exporter's ``--backend sim`` one sample at
a time in pure Python; the *batch* driver (:mod:`gpu_health.sim.backfill`,
:func:`gpu_health.sim.api.simulate_fleet`) computes the same signals for many GPUs and time steps at
once with numpy. Both read the same failure schedule and evaluate the same formulas (written once
against a small scalar/array shim in :mod:`gpu_health.sim.ops`), so a GPU looks the same at a given
time whichever driver is asked. See docs/simulator.md for the model and its sources.
"""

from __future__ import annotations
