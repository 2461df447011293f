"""The checks every label value the exporter takes from outside itself passes.

A label value is copied into every series of its GPU, so one that cannot be served breaks every
scrape, and a huge one swells every scrape. Two ways a value cannot be served:

- it is not valid UTF-8 text. Python reads a command-line argument or an environment variable
  that is not UTF-8 (``--node-name $'n\\xff'``) as text holding lone surrogates (``'n\\udcff'``),
  and JSON may spell them as ``\\udcff`` escapes; the exposition cannot encode them, so every
  /metrics answered 500 while /healthz stayed 200;
- it is longer than :data:`MAX_LABEL_VALUE` (a 100,000-character GPU name in a replay fixture
  made an 11 MB /metrics).

Values given by the operator (flags, the environment, a replay fixture) are refused at start
with a one-line error naming where they came from; values a driver reports are made servable
(:func:`from_driver`), since a GPU must not go unserved over its name.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: The longest label value taken from outside: the longest Kubernetes node name (a DNS
#: subdomain, 253 characters), the longest of the exporter's label values. NVML's own strings
#: are shorter still (a GPU name or UUID at most 96 bytes, a serial 30), and it stays well under
#: the 1,024 characters beyond which the scorer drops a series as damaged.
MAX_LABEL_VALUE = 253


def label_value_problem(value: str, limit: int = MAX_LABEL_VALUE) -> str:
    """Why ``value`` cannot be served as a label value (valid UTF-8 text of at most ``limit``
    characters), or "" when it can."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8 text"
    if len(value) > limit:
        return f"{len(value):,} characters long (at most {limit})"
    return ""


def node_name_problem(value: str) -> str:
    """Why ``value`` cannot be the ``node`` label, or "": besides :func:`label_value_problem`,
    it must not be blank (Prometheus drops an empty label, and the GPU's series would lose the
    node the scorer and the dashboards group by)."""
    if not value.strip():
        return "must not be empty"
    return label_value_problem(value)


def displayed(value: str) -> str:
    """``value`` as a message or the help may print it: what is not UTF-8 written as ``\\udcff``
    escapes (printing the lone surrogates themselves can fail)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def from_driver(value: Any, what: str) -> str | None:
    """A string a driver reported (NVML, DCGM), as a label value: bytes that are not UTF-8 and
    lone surrogates replaced, cut to :data:`MAX_LABEL_VALUE` characters, each with a warning
    naming ``what`` (``GPU 0 name``). A real driver answers short ASCII; this only keeps a
    broken answer from breaking every scrape. None stays None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        raw = value
    else:
        text = str(value)
        try:  # lone surrogates back to the bytes they stand for (as os.fsencode does)
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate no undecodable byte stands for
            raw = text.encode("utf-8", "surrogatepass")
    try:
        safe = raw.decode("utf-8")
    except UnicodeDecodeError:
        safe = raw.decode("utf-8", "replace")
        log.warning("%s is not valid UTF-8 text; serving it with the bad bytes replaced", what)
    if len(safe) > MAX_LABEL_VALUE:
        log.warning(
            "%s is %d characters long; serving its first %d",
            what,
            len(safe),
            MAX_LABEL_VALUE,
        )
        safe = safe[:MAX_LABEL_VALUE]
    return safe
