"""Reading a CSV file given on the command line, bounded and with one-line errors.

The CSV inputs (a failures list or ledger, an ages inventory, a fleet for the economics, a
replay trace) come from operators' spreadsheets and scripts. Read with ``csv`` straight from
``open``, a wrong path such as ``/dev/zero`` was read for ever (one line that never ends, held in
memory), a FIFO waited for a writer, and a binary or non-UTF-8 file ended in a traceback. Here
the file must be a regular file of bounded size and UTF-8 (a spreadsheet's byte-order mark is
dropped), and every problem is one line naming the file and, where it has one, the line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gpu_health.config import read_text_file
from gpu_health.errors import UserError

#: A failures list, a ledger or an inventory of 100,000 GPUs is a few MiB; a replay trace of a
#: day at one sample a second about 10 MiB. A larger file is a wrong path, not read into memory.
MAX_CSV_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class CsvFile:
    """A CSV file's header (cells stripped) and its text, for :meth:`rows`; ``source`` names it
    in errors."""

    source: str
    header: tuple[str, ...]
    text: str

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """``(line number, {column: cell})`` for each row that is not blank; the line number
        is the row's first line in the file (a quoted cell may span lines). A row with more
        cells than the header has columns, a malformed one, or a quote that never closes is a
        one-line error.

        Each row is handed on only once the next one is read: the last row is where a quote
        that never closes ends up (it takes in the rest of the file), and it is checked
        before a caller reads it, which said "age_days: missing" of such a file."""
        reader = csv.reader(io.StringIO(self.text, newline=""))
        try:
            next(reader, None)  # the header, read by read_csv
            pending: tuple[int, list[str]] | None = None
            line = reader.line_num + 1
            for cells in reader:
                if pending is not None and any(c.strip() for c in pending[1]):
                    yield self._row(*pending)
                pending = (line, cells)
                line = reader.line_num + 1
            if pending is not None:
                _check_closed(self.text, pending[1], self.source)
                if any(c.strip() for c in pending[1]):
                    yield self._row(*pending)
        except csv.Error as exc:
            raise UserError(f"{self.source}: line {reader.line_num}: {exc}") from None

    def _row(self, line: int, cells: list[str]) -> tuple[int, dict[str, str]]:
        if len(cells) > len(self.header):
            raise UserError(
                f"{self.source}: line {line}: {len(cells)} cells, but the header has "
                f"{len(self.header)} columns"
            )
        padded = [*cells, *([""] * (len(self.header) - len(cells)))]
        return line, dict(zip(self.header, padded, strict=True))


def _check_closed(text: str, last_row: list[str], source: str) -> None:
    """A one-line error when the file ends inside a quoted cell: ``csv`` reads such a file
    without complaint, the cell holding the rest of the file. That cell, if any, is the last
    row's last, opened by a quote at the start of a cell with every quote in it doubled, so the
    file ends with the cell written that way; ``strict`` reading from that quote confirms it
    never closes (reading the whole file strictly would also refuse a stray quote inside a
    cell, ``"a"b``, which is read as ``ab`` as before)."""
    if not last_row:
        return
    opened = len(text) - len(last_row[-1]) - last_row[-1].count('"') - 1
    if opened < 0 or text[opened] != '"' or text[opened + 1 :] != last_row[-1].replace('"', '""'):
        return
    if opened > 0 and text[opened - 1] not in ",\r\n":
        return
    try:
        for _ in csv.reader(io.StringIO(text[opened:], newline=""), strict=True):
            pass
    except csv.Error:
        before = text[:opened]
        line = 1 + before.count("\n") + before.count("\r") - before.count("\r\n")
        raise UserError(f"{source}: line {line}: a quote opened here is never closed") from None


def read_csv(path: Path | str, max_bytes: int = MAX_CSV_BYTES) -> CsvFile:
    """Read a CSV file and check its header: one line naming the file on any problem (not a
    regular file, too large, not UTF-8, no header, a column named twice)."""
    return parse_csv(read_text_file(path, max_bytes), str(path))


def parse_csv(text: str, source: str) -> CsvFile:
    """:func:`read_csv` of text already read (bounded) by the caller."""
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        first = next(reader, None)
    except csv.Error as exc:
        raise UserError(f"{source}: line 1: {exc}") from None
    try:
        only_row = first is not None and next(reader, None) is None
    except csv.Error:  # in a later row: rows() names its line
        only_row = False
    if only_row and first is not None:  # a quote in the header that never closes ends here
        _check_closed(text, first, source)
    header = tuple(h.strip() for h in first or ())
    if not any(header):
        raise UserError(f"{source}: empty file (expected a header line)")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise UserError(f"{source}: line 1: column {name!r} appears twice")
        seen.add(name)
    return CsvFile(source, header, text)
