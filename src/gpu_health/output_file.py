"""Writing a command's output file whole or not at all.

A report, a ledger or a feature table written in place and interrupted (a full disk, a killed
process, a path that turns out to be a directory) leaves a half file that reads like a whole
one, or replaces a good one with a broken one. Each output is written to a temporary file
beside its target and renamed over it only when complete: a reader sees the old file or the new
one, never part of one. A file that cannot be written is a one-line :class:`UserError` naming
the option and the path, not a traceback.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from gpu_health.errors import UserError


def current_umask() -> int:
    """The process' umask (read by setting it, then restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def open_atomically(path: Path, flag: str) -> Iterator[TextIO]:
    """A text handle whose content replaces ``path`` when the ``with`` block ends without an
    error; on any error the target is left as it was and the temporary file removed.

    The new file gets the permissions a plain ``open`` would give it (0666 less the umask), not
    the 0600 of a temporary file, so a report served by a web server stays readable.
    """
    try:  # beside the target, so that the rename stays on one file system
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot write: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{flag} {path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, text: str, flag: str) -> None:
    """Replace ``path`` with ``text`` whole (:func:`open_atomically`)."""
    with open_atomically(path, flag) as handle:
        handle.write(text)
