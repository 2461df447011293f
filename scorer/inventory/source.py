"""An inventory file watched between scoring runs: hot reload, keeping the last good version.

Operators edit the inventory while the scorer runs. A half-saved or mistyped file must not wipe
the datacenter labels off every dashboard, so a file that fails validation is refused with one
log line (and counted) and the last good inventory keeps serving. A file that disappears falls
back to the defaults (no inventory) with one warning, as at start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from gpu_health.errors import UserError
from gpu_health.scorer.inventory.loader import load_inventory
from gpu_health.scorer.inventory.model import Inventory

log = logging.getLogger(__name__)


class InventorySource:
    """``current()`` returns the inventory, re-reading the file when its mtime or size changed."""

    def __init__(self, path: Path | None, fmt: str = "auto", strict: bool = True) -> None:
        """With ``strict``, a file that exists but is invalid at start raises UserError."""
        self.path = path
        self.fmt = fmt
        self.reload_errors = 0
        self._stamp: tuple[int, int] | None = None
        self._inventory = Inventory.empty()
        self._missing_warned = False
        self._unknown_logged: set[str] = set()
        if path is not None:
            self._refresh(initial=strict)

    def _read_stamp(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _refresh(self, initial: bool = False) -> None:
        stamp = self._read_stamp()
        if stamp == self._stamp and not (initial and stamp is None):
            return
        self._stamp = stamp
        if stamp is None:
            if not self._missing_warned:
                log.warning(
                    "inventory %s not found: using the defaults (age, price and rates from the "
                    "economics parameters, no datacenter labels)",
                    self.path,
                )
                self._missing_warned = True
            self._inventory = Inventory.empty()
            return
        try:
            inventory = load_inventory(self.path, self.fmt)  # type: ignore[arg-type]
        except UserError as exc:
            if initial:
                raise
            self.reload_errors += 1
            log.warning("inventory refused, keeping the last good one: %s", exc)
            return
        self._missing_warned = False
        self._inventory = inventory
        log.info("inventory loaded: %d records from %s", len(inventory), self.path)

    def current(self) -> Inventory:
        if self.path is not None:
            self._refresh()
        return self._inventory

    def note_unknown(self, uuids: Iterable[str]) -> list[str]:
        """Log GPUs missing from the inventory, each only the first time it is seen."""
        if self.path is None or not len(self._inventory):
            return []
        new = sorted(set(uuids) - self._unknown_logged)
        if new:
            self._unknown_logged.update(new)
            shown = ", ".join(new[:20]) + (f" and {len(new) - 20} more" if len(new) > 20 else "")
            log.warning("%d GPUs are not in the inventory %s: %s", len(new), self.path, shown)
        return new
