"""Remote text made safe to log or serve: one line, bounded, no control characters.

Prometheus error messages, HTTP answers and exception text come from outside (or from a library
that quotes outside input). Printed raw, an ESC byte can rewrite an operator's terminal and a
newline can forge a log line; an exception's text can carry the installation's file paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_PATH = re.compile(r"(?<![\w.])(?:/[\w.\-+@]+){2,}/?")


def one_line(text: object, limit: int = 300) -> str:
    """``text`` with control characters (ESC, CR, LF, ...) replaced by spaces, whitespace runs
    collapsed, and cut to ``limit`` characters."""
    return " ".join(_CONTROL.sub(" ", str(text)).split())[:limit]


def shown(text: object, limit: int = 120) -> str:
    """``text`` (a path, a value read from a file) as a one-line message shows it:
    :func:`one_line`, cut to ``limit`` characters with "…" where it was longer."""
    line = one_line(text, limit + 1)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def without_paths(text: str) -> str:
    """Absolute file paths (``/usr/lib/python3/...``) replaced by ``<path>``: an API answer must
    not show where and how the service is installed."""
    return _PATH.sub("<path>", text)


def gpus_counted(n: int) -> str:
    """``1 GPU``, ``1,234 GPUs``: a count as messages about GPUs say it."""
    return f"{n:,} GPU" if n == 1 else f"{n:,} GPUs"


def counted_by_name(
    counts: Mapping[str, int], limit: int, show: Callable[[str], str] = str
) -> str:
    """``A (3 GPUs), B (1 GPU) and 2 more models (5 GPUs)``: the ``limit`` names with the most
    GPUs (each as ``show`` writes it), the rest counted; one wording for every message that
    lists GPU models (the scorer's log, the report)."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    named = ", ".join(f"{show(name)} ({gpus_counted(n)})" for name, n in ordered[:limit])
    rest = ordered[limit:]
    if rest:
        named += f" and {len(rest)} more models ({gpus_counted(sum(n for _, n in rest))})"
    return named
