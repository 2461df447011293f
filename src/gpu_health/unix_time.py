"""Times given by a person: Unix seconds or ISO 8601, from 1970 to the year 9999.

One parser for every command that takes a time (the scorer's ``--at``/``--start``/``--end``,
``backfill --end-time``) and for the times in CSV files, so each refuses the same things: NaN,
infinities, times before 1970, and times past ISO 8601's four-digit years, which are a typo or
milliseconds, never a GPU's history (until 2026-12-06 ``nan`` and ``-5`` were sent on to
Prometheus, and ``backfill --end-time nan`` ended in a traceback).
"""

from __future__ import annotations

import datetime as dt

from gpu_health.errors import UserError

#: The latest time taken: the last second of the year 9999.
LATEST_TIME_S = 253_402_300_799.0


def parse_time(text: str, what: str = "time") -> float:
    """Unix seconds, or an ISO 8601 date or time (UTC unless it names a zone; ``Z`` allowed),
    as Unix seconds; a :class:`UserError` naming ``what`` otherwise."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(
                f"{what} {text!r}: expected Unix seconds or ISO 8601 (2026-11-24T06:00:00Z)"
            ) from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        seconds = stamp.timestamp()
    if not 0.0 <= seconds <= LATEST_TIME_S:  # NaN fails both comparisons
        hint = " (milliseconds?)" if LATEST_TIME_S < seconds < LATEST_TIME_S * 1000 else ""
        raise UserError(f"{what} {text!r}: expected a time from 1970 to the year 9999{hint}")
    return seconds


def iso_utc(t: float) -> str:
    """``t`` as messages show a time: ISO 8601 in UTC to the second (``2026-12-01T00:00:00Z``)."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
