"""The HTTP server and exporter-toolkit web configuration shared by the exporter and the scorer.

Only the table of the server's own metrics lives here, so the metric catalogue (and
``docs/metrics.md``, generated from it) can list them without importing the event loop. Each
process prefixes its namespace: ``gpu_exporter_http_connections_refused_total``,
``gpu_scorer_http_connections_refused_total``.
"""

from __future__ import annotations

from typing import Literal

#: (name after the namespace, type, help).
SERVER_METRICS: tuple[tuple[str, Literal["gauge", "counter"], str], ...] = (
    (
        "http_connections_refused_total",
        "counter",
        "HTTP connections closed at accept: the connection cap was reached and none could be "
        "evicted.",
    ),
    (
        "http_connections_evicted_total",
        "counter",
        "HTTP connections closed to admit a new one at the connection cap: idle, in a request "
        "head, stalled (the client stopped reading its answer), closing with bytes unsent, or, "
        "from an address holding more, queued for a handler or sending an answer not yet seen "
        "taken.",
    ),
    (
        "http_connections_expired_total",
        "counter",
        "HTTP connections closed for not finishing the TLS handshake and request head in time.",
    ),
    (
        "http_connections_failed_total",
        "counter",
        "HTTP connections ended by an unexpected server error (logged, rate-limited).",
    ),
    (
        "http_requests_overloaded_total",
        "counter",
        "HTTP requests answered 503: handler queue or the client's share of it full, or too "
        "many bcrypt checks waiting.",
    ),
    (
        "http_connections_open",
        "gauge",
        "HTTP connections open now.",
    ),
)
