"""Validators for numeric and path command-line values, shared by every gpu-health command.

``float("nan")`` and ``float("inf")`` parse, and ``nan <= 0`` is False, so a plain ``type=float``
lets ``--interval nan`` through (it became a busy loop) and a plain ``type=int`` lets
``--sim-gpus 10000000`` allocate until the host swaps. Every numeric flag goes through
:func:`number` or :func:`integer` with an explicit range, so a bad value is one argparse line
naming the flag, the value and what is allowed, before any work starts.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from gpu_health.cli_support import OPTION_NAMES
from gpu_health.errors import UserError

#: GPUs a backfill may simulate: a large training fleet is tens of thousands; 100,000 keeps a typo
#: (``--gpus 99999999999``) from growing until the host swaps.
MAX_GPUS = 100_000
#: GPUs one exporter process may simulate or replay (a node has 8 to 16; the demo runs 64).
MAX_EXPORTER_GPUS = 4096
#: The largest multiplier of the simulator's failure rates (``--hazard-scale``,
#: ``--sim-hazard-scale``). The simulator draws every board's whole life, from its purchase to
#: 2036, and each failure that replaces a board draws the new board's life again, so the cost
#: grows with the square of the multiplier: 8 GPUs took 1.9 s at 100, 8.0 s and 103 MB at 200,
#: 126 s and 2.0 GB at 1,000 (``gpu-health backfill --gpus 8 --days 1 --resolution 1h
#: --no-health``, 2026-12-07), where 1e6 was allowed. 200 already gives every GPU about 26
#: failures a year; the project's own tests and benches use at most 150.
MAX_HAZARD_SCALE = 200.0

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def _show(value: float) -> str:
    return f"{value:g}"


def number(
    minimum: float, maximum: float, *, exclusive_minimum: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: a finite float in [minimum, maximum] (``(minimum, ...`` when
    ``exclusive_minimum``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        return check_number(value, text, minimum, maximum, exclusive_minimum)

    return parse


def check_number(
    value: float, text: str, minimum: float, maximum: float, exclusive_minimum: bool = False
) -> float:
    low_ok = value > minimum if exclusive_minimum else value >= minimum
    if not math.isfinite(value) or not low_ok or value > maximum:
        bracket = "(" if exclusive_minimum else "["
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range (allowed: a finite number in "
            f"{bracket}{_show(minimum)}, {_show(maximum)}])"
        )
    return value


def integer(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number in [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range (allowed: {minimum} to {maximum})"
            )
        return value

    return parse


def duration(minimum: float, maximum: float) -> Callable[[str], float]:
    """An argparse ``type``: ``500ms``, ``90s``, ``15m``, ``12h``, ``7d``, ``1w`` or plain
    seconds, finite and in (minimum, maximum] seconds."""

    def parse(text: str) -> float:
        raw = text.strip()
        unit = next((u for u in ("ms", "s", "m", "h", "d", "w") if raw.endswith(u)), "")
        try:
            value = float(raw[: len(raw) - len(unit)]) * _UNITS.get(unit, 1.0)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration (e.g. 500ms, 60s, 12h, 7d)"
            ) from None
        if not math.isfinite(value) or not minimum < value <= maximum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range (allowed: a duration longer than "
                f"{show_duration(minimum)}, at most {show_duration(maximum)})"
            )
        return value

    return parse


def show_duration(seconds: float) -> str:
    """``7d``, ``90s``, ``500ms``: ``seconds`` in the largest unit that writes it whole (a range
    printed in raw seconds, ``(0, 604800]``, left the reader to work out that it means a week)."""
    if seconds == 0:
        return "0s"
    for unit in ("w", "d", "h", "m", "s", "ms"):
        count = seconds / _UNITS[unit]
        if abs(count - round(count)) < 1e-9 and round(count) >= 1:
            return f"{round(count)}{unit}"
    return f"{seconds:g}s"


def http_url(text: str) -> str:
    """An argparse ``type``: an ``http://`` or ``https://`` base URL with a host (a Prometheus,
    Thanos or Mimir address), refused at start rather than at the first query, where an empty
    string or a bad IPv6 address ended in a traceback.

    A URL holding credentials (``http://user:password@host``) is refused: the password would be
    in the process list, and it was printed in every error naming the URL (``report`` and
    ``plan`` then failed anyway, looking the whole ``user:password@host`` up as a host name).
    No message of this function shows the password."""
    url = text.strip()
    shown = without_password(text)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{shown!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{shown!r}: expected http:// or https:// and a host, e.g. http://127.0.0.1:9090"
        )
    if "@" in parts.netloc:
        raise argparse.ArgumentTypeError(
            f"{shown!r}: credentials in the URL are refused (they would show in the process "
            "list and in errors); gpu-health-scorer reads them from "
            "--prometheus.basic-auth-username and --prometheus.basic-auth-password-file"
        )
    page = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if page in _WEB_PAGES or "/api/v1" in parts.path:
        # the part before the page (or before /api/v1): a route prefix such as /prometheus stays
        cut = parts.path.find("/api/v1") if "/api/v1" in parts.path else parts.path.rfind(page)
        base = urllib.parse.urlunsplit(
            parts._replace(path=parts.path[:cut].rstrip("/"), query="", fragment="")
        )
        raise argparse.ArgumentTypeError(
            f"{shown!r}: that is a page of the server, not its base URL; give {base}"
        )
    return url


#: The last path segment of a web page that users paste for the server's base URL: Prometheus'
#: query page (``/graph``; 3.x's ``/query`` is left alone, a proxy may serve a Thanos Query
#: under that prefix), VictoriaMetrics' UI (``/vmui``).
_WEB_PAGES = frozenset({"graph", "vmui"})
_USERINFO = re.compile(r"(//[^/?#@]*?):[^/?#@]*@")


def without_password(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part shown as ``***``."""
    return _USERINFO.sub(r"\1:***@", url)


def unix_time(text: str) -> float:
    """An argparse ``type``: Unix seconds or ISO 8601, from 1970 to the year 9999
    (:func:`gpu_health.unix_time.parse_time`)."""
    from gpu_health.unix_time import parse_time

    try:
        return parse_time(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def output_path(
    path: Path, flag: str, *, directory: bool = False, inputs: argparse.Namespace | None = None
) -> Path:
    """Check, before any work, that ``path`` can be created: its parent exists, is a directory
    and is writable, and ``path`` is not under /proc or /sys. No directory is created here (nor
    later, outside the one asked for). With ``inputs`` (the command's parsed arguments), an
    existing file that another option names, through a link or not, is refused: ``plan
    --inventory fleet.csv --html fleet.csv`` replaced the inventory with HTML and exited 0.
    Returns the path; raises a one-line UserError."""
    resolved = Path(os.path.abspath(path))
    if resolved.parts[1:2] in (("proc",), ("sys",), ("dev",)):
        raise UserError(f"{flag} {path}: not a place for output (a kernel file system)")
    parent = resolved.parent
    if not parent.exists():
        raise UserError(f"{flag} {path}: the directory {parent} does not exist")
    if not parent.is_dir():
        raise UserError(f"{flag} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: the directory {parent} is not writable")
    if resolved.exists() and resolved.is_dir() != directory:
        kind = "a directory" if resolved.is_dir() else "a file"
        raise UserError(f"{flag} {path}: exists and is {kind}")
    if inputs is not None and resolved.is_file():
        _refuse_an_input(path, flag, inputs)
    return path


def _refuse_an_input(path: Path, flag: str, args: argparse.Namespace) -> None:
    """A one-line error when another option of the command names the file ``path`` is."""
    names: dict[str, str] = getattr(args, OPTION_NAMES, {})
    for dest, value in vars(args).items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is path or not isinstance(item, (str, Path)) or not str(item):
                continue
            try:
                same = os.path.samefile(item, path)
            except (OSError, ValueError):  # not a file name, or nothing there
                continue
            if same:
                option = names.get(dest, "--" + dest.replace("_", "-"))
                raise UserError(
                    f"{flag} {path}: is the file {option} reads ({item}); writing the output "
                    "there would destroy it: choose another path"
                )
