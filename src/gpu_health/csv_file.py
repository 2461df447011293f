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
        cells than the header has columns, or a malformed one, is a one-line error."""
        reader = csv.reader(io.StringIO(self.text, newline=""))
        try:
            next(reader, None)  # the header, read by read_csv
            line = reader.line_num + 1
            for cells in reader:
                if any(c.strip() for c in cells):
                    if len(cells) > len(self.header):
                        raise UserError(
                            f"{self.source}: line {line}: {len(cells)} cells, but the header has "
                            f"{len(self.header)} columns"
                        )
                    padded = [*cells, *([""] * (len(self.header) - len(cells)))]
                    yield line, dict(zip(self.header, padded, strict=True))
                line = reader.line_num + 1
        except csv.Error as exc:
            raise UserError(f"{self.source}: line {reader.line_num}: {exc}") from None


def read_csv(path: Path | str, max_bytes: int = MAX_CSV_BYTES) -> CsvFile:
    """Read a CSV file and check its header: one line naming the file on any problem (not a
    regular file, too large, not UTF-8, no header, a column named twice)."""
    return parse_csv(read_text_file(path, max_bytes), str(path))


def parse_csv(text: str, source: str) -> CsvFile:
    """:func:`read_csv` of text already read (bounded) by the caller."""
    text = text.removeprefix("\ufeff")
    try:
        first = next(csv.reader(io.StringIO(text, newline="")), None)
    except csv.Error as exc:
        raise UserError(f"{source}: line 1: {exc}") from None
    header = tuple(h.strip() for h in first or ())
    if not any(header):
        raise UserError(f"{source}: empty file (expected a header line)")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise UserError(f"{source}: line 1: column {name!r} appears twice")
        seen.add(name)
    return CsvFile(source, header, text)
