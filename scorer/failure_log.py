"""A failure that recurs on every scoring run, logged once per distinct error.

The scorer runs every few minutes. A part that fails on each run for the same cause (a bug, a
broken parameter file) used to log its traceback each time, burying every other line of the log
for as long as the cause lasted. :class:`RecurringFailure` logs the traceback when the error is
new or differs from the last one, repeats at debug level only, and says one line when the part
works again.
"""

from __future__ import annotations

import logging

from gpu_health.safetext import one_line


class RecurringFailure:
    """What a part of each run says about its failures: ``failed`` in an ``except`` block,
    ``worked`` after a run in which it succeeded."""

    def __init__(self, log: logging.Logger, what: str, consequence: str) -> None:
        """``what`` names the part ("economics"); ``consequence`` says what the run serves
        without it ("serving failure scores without it")."""
        self._log = log
        self._what = what
        self._consequence = consequence
        self._last: str | None = None

    @property
    def failing(self) -> bool:
        """Whether the part failed on its last run."""
        return self._last is not None

    def failed(self, exc: BaseException) -> None:
        """Log ``exc`` with its traceback if it differs from the last failure (call it from
        the ``except`` block that caught it, so the traceback is the current one)."""
        said = f"{type(exc).__name__}: {one_line(exc)}"
        if said != self._last:
            self._last = said
            self._log.exception("%s failed; %s", self._what, self._consequence)
        else:
            self._log.debug("%s failed again: %s", self._what, said)

    def worked(self) -> None:
        """The part succeeded: one line if it had been failing."""
        if self._last is not None:
            self._last = None
            self._log.info("%s works again", self._what)
