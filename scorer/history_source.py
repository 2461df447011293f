"""Where the scorer reads history: the raw series, their 5-minute samples that the mixin's
``gpu-health-scorer-history.rules`` group records, or, for its windows of a week or more, their
hourly samples that its ``gpu-health-scorer-hourly.rules`` group records.

Every feature is a range function over one hour to 30 days of a GPU's series, so on every run
Prometheus reads every raw sample in those windows: the cost follows the scrape interval (at
30 s, ten times the samples of 5-minute history). The recording rules keep each series the
scorer reads as a 5-minute scrape would have seen it: ``last_over_time(X[5m])`` every 5
minutes, every label kept, named ``gpu:X:last_over_time5m`` (:func:`recorded_name`). Reading
those, a run reads as many samples as on 5-minute history, whatever the scrape interval. The rule
and the model were measured on 2- to 15-minute histories, and the scorer tells the same story
on 2-minute and hourly history (``tests/scorer/test_resolution_invariance.py``), so nothing is
tuned again for it.

The 5-minute samples cost as much as 5-minute history does. The hourly ones cut a week-long
window to 168 samples a series whatever the scrape interval (the last reading of each hour; a
gauge the scorer averages, the hour's average): windows of at least
:data:`HOURLY_MIN_WINDOW` read them (:func:`to_hourly`), shorter ones and every ``changes()``
(XID codes, whose every change counts) read the raw or 5-minute series. A long window then ends
at the group's last evaluation, up to an hour before the scored time; what came since is in the
short windows and in the "reading now" lookups, which stay raw. ``changes()`` and dcgm-exporter's
XID gauges stay raw at every window: their every value is an event.

``auto`` (the default of ``serve`` and ``score``) reads each recorded tier only where it holds
every GPU the raw series hold, now and at offsets up to the longest window a feature reads
(:func:`why_not_recorded`, :func:`why_not_hourly`); otherwise the raw series, with one line in
the log saying why (:func:`choose`).
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from gpu_health.scorer.feature_promql import window_seconds
from gpu_health.scorer.feature_schema import Schema, presence_names
from gpu_health.telemetry.xids import DCGM_XID_GAUGES

log = logging.getLogger(__name__)

HistoryMode = Literal["auto", "raw", "recorded", "hourly"]
HISTORY_MODES: tuple[HistoryMode, ...] = ("auto", "raw", "recorded", "hourly")
#: What a run read: ``auto`` resolves to one of these (``recorded+hourly``: the hourly samples
#: for the long windows, the 5-minute ones for the rest).
HistorySource = Literal["raw", "recorded", "hourly", "recorded+hourly"]
HISTORY_SOURCES: tuple[HistorySource, ...] = ("raw", "recorded", "hourly", "recorded+hourly")

#: The recording rules' interval: one sample per series every 5 minutes.
RECORDED_INTERVAL = "5m"
#: Where ``auto`` compares the recorded history's reach with the raw one's: at each of these
#: offsets from the scored time where the raw series have a sample, the recorded ones must
#: too (the longest window a feature reads is 30 days; Prometheus' default retention is 15).
CHECKED_OFFSETS: tuple[str, ...] = ("30d", "21d", "14d", "7d", "1d", "0s")
#: The hourly rules' interval, and the shortest window that reads their samples.
HOURLY_INTERVAL = "1h"
HOURLY_MIN_WINDOW = "7d"


def recorded_name(metric: str) -> str:
    """The recording rule's name for ``metric`` (``level:metric:operations``; the level is the
    series itself, as for the mixin's other per-GPU rules)."""
    return f"gpu:{metric}:last_over_time{RECORDED_INTERVAL}"


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A ``__name__`` matcher (its string is a list of names), any other string literal (left as
#: it is: a label value or regex), or a metric name that starts a selector (followed by its
#: label matchers or its range). Names with a colon (recorded already) are never matched.
_TOKENS = re.compile(
    r"(?P<matcher>__name__\s*=~?\s*)\"(?P<names>[^\"\\]*)\""
    r"|(?P<string>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`)"
    r"|(?<![\w:])(?P<selector>[A-Za-z_][A-Za-z0-9_]*)(?=\s*[{\[])"
)


def to_recorded(promql: str) -> str:
    """``promql`` reading the recorded series instead of the raw ones: every metric a selector
    names (before its ``{`` or ``[``, or in a ``__name__`` matcher listing names) renamed by
    :func:`recorded_name`. Label values and regexes are left alone; applying it twice changes
    nothing more."""

    def rename(m: re.Match[str]) -> str:
        if m.group("selector"):
            return recorded_name(m.group("selector"))
        if m.group("matcher") is None:
            return m.group(0)
        names = m.group("names").split("|")
        if not all(_NAME.fullmatch(n) or n.startswith("gpu:") for n in names):
            raise ValueError(f"__name__ matcher {m.group('names')!r} is not a list of names")
        renamed = "|".join(n if n.startswith("gpu:") else recorded_name(n) for n in names)
        return f'{m.group("matcher")}"{renamed}"'

    return _TOKENS.sub(rename, promql)


#: Gauges whose long windows the scorer averages (``sum_over_time / count_over_time``): their
#: hourly sample is the hour's average, not its last reading, so that a pattern that repeats
#: within the hour (a job cycle) does not bias the week's average by the minute the group runs
#: at (measured: utilisation over 7 days read 0.658 from the last readings, 0.623 raw, on 1,169
#: of 2,000 GPUs of a simulated fleet). The count of hourly samples is then the hours with a
#: reading, and a last hourly sample still says a GPU was seen.
HOURLY_AVERAGED = frozenset(
    {
        "DCGM_FI_DEV_BOARD_POWER_WATTS",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_GPU_TEMP_CELSIUS",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_GPU_UTIL_RATIO",
        "DCGM_FI_DEV_POWER_USAGE",
        "gpu_power_watts",
        "gpu_temperature_celsius",
        "gpu_utilization_ratio",
    }
)


def hourly_name(metric: str) -> str:
    """The hourly recording rule's name for ``metric``: its hour's average for the gauges of
    :data:`HOURLY_AVERAGED`, its last reading of the hour for the rest (a counter's last
    reading holds every rise before it)."""
    fn = "avg_over_time" if metric in HOURLY_AVERAGED else "last_over_time"
    return f"gpu:{metric}:{fn}{HOURLY_INTERVAL}"


#: A range function of one selector over a window, with its offset: the calls
#: :func:`to_hourly` may rename. Label matchers may hold quoted braces (a regex).
_RANGE_CALL = re.compile(
    r"(?<![\w:])(?P<fn>[a-z_]+)\(\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?P<matchers>\s*\{(?:[^}\"]|\"(?:[^\"\\]|\\.)*\")*\})?"
    r"\s*\[(?P<window>[0-9]+[smhdwy](?:[0-9]+[smhdwy])*)\]"
)
#: What keeps reading the raw (or 5-minute) series at every window: ``changes()`` and
#: dcgm-exporter's XID gauges, whose every value is an event (two XIDs within one hour would be
#: one hourly sample). Counters lose nothing to hourly samples: each holds every rise before it.
_RAW_ONLY_FUNCTIONS = frozenset({"changes"})
_RAW_ONLY_NAMES = frozenset(DCGM_XID_GAUGES)


def _hourly_call(m: re.Match[str]) -> bool:
    if m.group("fn") in _RAW_ONLY_FUNCTIONS or m.group("name") in _RAW_ONLY_NAMES:
        return False
    return window_seconds(m.group("window")) >= window_seconds(HOURLY_MIN_WINDOW)


def to_hourly(promql: str) -> str:
    """``promql`` with every range function over a window of at least
    :data:`HOURLY_MIN_WINDOW` reading the hourly samples (:func:`hourly_name`), over a window
    one interval longer; the function, label matchers and offset are kept. Applying it twice
    changes nothing more.

    The longer window holds the hourly sample taken before the raw window begins, so a rise
    between the window's start and its first hourly sample still counts (a counter's span from
    the hourly samples of the window alone lost it: 9 corrected errors 26 minutes into a week,
    read as none). It may count up to an hour before the window instead."""

    def rename(m: re.Match[str]) -> str:
        if not _hourly_call(m):
            return m.group(0)
        longer = round(window_seconds(m.group("window")) + window_seconds(HOURLY_INTERVAL))
        text, at = m.group(0), m.start()
        name, window = m.span("name"), m.span("window")
        return (
            text[: name[0] - at]
            + hourly_name(m.group("name"))
            + text[name[1] - at : window[0] - at]
            + f"{longer}s"
            + text[window[1] - at :]
        )

    return _RANGE_CALL.sub(rename, promql)


def hourly_calls(promql: str) -> set[tuple[str, str]]:
    """(metric name, range function) of each call of ``promql`` that :func:`to_hourly` renames."""
    return {
        (m.group("name"), m.group("fn")) for m in _RANGE_CALL.finditer(promql) if _hourly_call(m)
    }


def hourly_names(promql: str) -> set[str]:
    """The metric names whose hourly samples ``promql`` reads once :func:`to_hourly`-ed."""
    return {name for name, _ in hourly_calls(promql)}


def selected_names(promql: str) -> set[str]:
    """The metric names ``promql``'s selectors read (what :func:`to_recorded` renames)."""
    found: set[str] = set()
    for m in _TOKENS.finditer(promql):
        if m.group("selector"):
            found.add(m.group("selector"))
        elif m.group("matcher") is not None:
            found.update(m.group("names").split("|"))
    return found


class Querier(Protocol):
    """What the feature code asks of a Prometheus client: instant queries."""

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class RecordedHistory:
    """A client whose every query reads the recorded series (:func:`to_recorded`)."""

    client: Querier

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        return self.client.query(to_recorded(promql), at)


@dataclass(frozen=True)
class HourlyHistory:
    """A client whose long windows read the hourly samples (:func:`to_hourly`); the rest of
    each query goes to ``client`` as it is (a :class:`RecordedHistory` renames it further)."""

    client: Querier

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        return self.client.query(to_hourly(promql), at)


def reach_query(s: Schema, later_s: int = 0, hourly: bool = False) -> str:
    """GPUs with a presence sample (power or temperature) within the presence window at each of
    :data:`CHECKED_OFFSETS` back, one series per offset (label ``offset``), in raw names: pass
    it through :func:`to_recorded` for the recorded series. ``later_s``: each past window ends
    that many seconds later (not the one ending now). ``hourly``: the hourly samples, each
    window an hour longer (the last one may copy a raw sample up to an hour older)."""
    names = presence_names(s)
    window = s.fresh
    if hourly:
        names = "|".join(hourly_name(n) for n in names.split("|"))
        window = f"{round(window_seconds(HOURLY_INTERVAL) + window_seconds(s.fresh))}s"
    parts = []
    for o in CHECKED_OFFSETS:
        back = round(window_seconds(o)) - later_s if o != "0s" else 0
        offset = f" offset {back}s" if back > 0 else ""
        parts.append(
            f"label_replace(count(group by ({s.uuid}) (last_over_time("
            f'{{__name__=~"{names}"}}[{window}]{offset}))), "offset", "{o}", "", "")'
        )
    return " or ".join(parts)


def _reach(client: Querier, promql: str, at: float | None) -> dict[str, int]:
    return {
        r["metric"].get("offset", ""): int(float(r["value"][1])) for r in client.query(promql, at)
    }


def _short_of(raw: dict[str, int], tier: dict[str, int], what: str, group: str) -> str | None:
    """Where ``tier`` holds fewer GPUs than ``raw`` at an offset, the reason in words; and where
    neither holds any GPU at all: a tier that stands for nothing is not read (a scorer started
    before its fleet's first scrape, or asked about a time before its history, logged that it
    read the recorded history of a database that had none)."""
    if not any(tier.values()) and not any(raw.values()):
        return f"the {what} holds no GPU, nor does the raw history"
    for offset in reversed(CHECKED_OFFSETS):
        want, have = raw.get(offset, 0), tier.get(offset, 0)
        if have < want:
            when = "now" if offset == "0s" else f"{offset} back"
            return (
                f"the {what} holds {have} of the {want} GPUs reporting {when} "
                f"(the {group} group is not loaded, or is newer than the raw history and was "
                "not backfilled)"
            )
    return None


def raw_reach(client: Querier, s: Schema, at: float | None) -> dict[str, int]:
    """GPUs the raw series hold at each of :data:`CHECKED_OFFSETS` (what each tier must hold)."""
    return _reach(client, reach_query(s), at)


def why_not_recorded(
    client: Querier, s: Schema, at: float | None, raw: dict[str, int] | None = None
) -> str | None:
    """None when the recorded series can stand for the raw ones at ``at``: at each of
    :data:`CHECKED_OFFSETS` they hold at least the GPUs the raw ones hold. Otherwise the
    reason, in words.

    A recorded sample is written up to one rule interval after the raw sample it copies, so a
    raw history that begins just inside a past window has its first copy just after it: the
    recorded windows in the past end one interval later than the raw ones."""
    raw = raw_reach(client, s, at) if raw is None else raw
    return _recorded_short_of(raw, recorded_reach(client, s, at))


def recorded_reach(client: Querier, s: Schema, at: float | None) -> dict[str, int]:
    """GPUs the 5-minute recorded series hold at each of :data:`CHECKED_OFFSETS`."""
    later = reach_query(s, round(window_seconds(RECORDED_INTERVAL)))
    return _reach(RecordedHistory(client), later, at)


def _recorded_short_of(raw: dict[str, int], recorded: dict[str, int]) -> str | None:
    return _short_of(raw, recorded, "recorded history", "gpu-health-scorer-history.rules")


def why_not_hourly(
    client: Querier, s: Schema, at: float | None, raw: dict[str, int] | None = None
) -> str | None:
    """:func:`why_not_recorded` for the hourly samples (a GPU that began reporting since the
    group's last evaluation has none yet: until it has, ``auto`` reads the raw long windows)."""
    raw = raw_reach(client, s, at) if raw is None else raw
    return _hourly_short_of(raw, hourly_reach(client, s, at))


def hourly_reach(client: Querier, s: Schema, at: float | None) -> dict[str, int]:
    """GPUs the hourly samples hold at each of :data:`CHECKED_OFFSETS`."""
    later = reach_query(s, round(window_seconds(HOURLY_INTERVAL)), hourly=True)
    return _reach(client, later, at)


def _hourly_short_of(raw: dict[str, int], hourly: dict[str, int]) -> str | None:
    return _short_of(raw, hourly, "hourly history", "gpu-health-scorer-hourly.rules")


#: The last reason logged per schema, mode and tier (logged again only when it changes, so a
#: serving scorer does not repeat it every run), as :func:`_reason_key` keeps it.
_last_reason: dict[tuple[str, HistoryMode, str], str | None] = {}
#: The count of GPUs reporting in a reason (:func:`_short_of`).
_REPORTING = re.compile(r"of the \d+ GPUs reporting")


def _reason_key(reason: str | None) -> str | None:
    """``reason`` without the count of GPUs the raw series hold: what a tier holds and where
    are news; a fleet one GPU smaller is not. Keyed on the whole reason, a tier that is not
    there at all was logged again at 11 of 14 times of a backtest on a blind generator's data
    hall (``evaluate --data-dir``, 238 boards), and at every run of a scorer whose fleet lost
    or gained a GPU."""
    return None if reason is None else _REPORTING.sub("of the N GPUs reporting", reason)

#: Per tier: the mode that reads it even where it falls short, and the log line when it is read.
_TIERS: dict[str, tuple[HistoryMode, str]] = {
    "recorded": ("recorded", "reading the 5-minute recorded history (gpu:*:last_over_time5m)"),
    "hourly": (
        "hourly",
        f"reading the hourly recorded history (gpu:*:last_over_time1h) for windows of "
        f"{HOURLY_MIN_WINDOW} or more",
    ),
}


def _use(tier: str, reason: str | None, s: Schema, mode: HistoryMode) -> bool:
    """Whether ``mode`` reads ``tier`` given :func:`why_not_recorded`'s (or
    :func:`why_not_hourly`'s) ``reason``; the choice is logged when it or its reason changes,
    but for the count of GPUs reporting (:func:`_reason_key`)."""
    forced, reading = _TIERS[tier]
    use = mode == forced or reason is None
    if _last_reason.get((s.name, mode, tier), "") != _reason_key(reason):
        _last_reason[(s.name, mode, tier)] = _reason_key(reason)
        if reason is None:
            log.info(reading)
        elif use:  # read as asked, but say why the answer may be thin
            log.warning("reading %s history as asked, but %s", tier, reason)
        else:
            log.info("not reading the %s history: %s", tier, reason)
    return use


#: Reach queries :func:`choose` sends at once: the raw series', the 5-minute tier's and the
#: hourly tier's. Prometheus has nothing else to do before the features are read.
REACH_WORKERS = 3


def choose(
    client: Querier, s: Schema, at: float | None, mode: HistoryMode, workers: int | None = None
) -> tuple[Querier, HistorySource]:
    """The client to read features through, and what it reads: ``raw`` the client itself;
    ``recorded`` a :class:`RecordedHistory` over it, ``hourly`` an :class:`HourlyHistory` (each
    with a warning where :func:`why_not_recorded` or :func:`why_not_hourly` objects); ``auto``
    each tier where it has no objection, both together where neither has. ``workers``: reach
    queries sent at once (:data:`REACH_WORKERS` when None; 1: one after another)."""
    if mode == "raw":
        return client, "raw"
    # The raw reach once for both tiers (a query per run saved), the three reaches at once.
    workers = REACH_WORKERS if workers is None else workers
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        raw_asked = pool.submit(raw_reach, client, s, at)
        recorded_asked = pool.submit(recorded_reach, client, s, at) if mode != "hourly" else None
        hourly_asked = pool.submit(hourly_reach, client, s, at) if mode != "recorded" else None
        raw = raw_asked.result()
        recorded = recorded_asked is not None and _use(
            "recorded", _recorded_short_of(raw, recorded_asked.result()), s, mode
        )
        hourly = hourly_asked is not None and _use(
            "hourly", _hourly_short_of(raw, hourly_asked.result()), s, mode
        )
    reader: Querier = RecordedHistory(client) if recorded else client
    if hourly:
        reader = HourlyHistory(reader)
    source: HistorySource = (
        "recorded+hourly"
        if recorded and hourly
        else "recorded"
        if recorded
        else "hourly"
        if hourly
        else "raw"
    )
    return reader, source
