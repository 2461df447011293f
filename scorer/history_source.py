"""Where the scorer reads history: the raw series, or their 5-minute samples that the mixin's
``gpu-health-scorer-history.rules`` group records.

Every feature is a range function over one hour to 30 days of a GPU's series, so on every run
Prometheus reads every raw sample in those windows: the cost follows the scrape interval (at
30 s, ten times the samples of 5-minute history). The recording rules keep each series the
scorer reads as a 5-minute scrape would have seen it: ``last_over_time(X[5m])`` every 5
minutes, every label kept, named ``gpu:X:last_over_time5m`` (:func:`recorded_name`). Reading
those, a run reads as many samples as on 5-minute history, whatever the scrape interval. The rule
and the model were measured on 2- to 15-minute histories, and the scorer tells the same story
on 2-minute and hourly history (``tests/scorer/test_resolution_invariance.py``), so nothing is
tuned again for it.

``auto`` (the default of ``serve`` and ``score``) reads the recorded series only where they
hold every GPU the raw ones hold, now and at offsets up to the longest window a feature reads
(:func:`why_not_recorded`); otherwise the raw ones, with one line in the log saying why
(:func:`choose`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from gpu_health.scorer.feature_promql import window_seconds
from gpu_health.scorer.feature_schema import Schema, presence_names

log = logging.getLogger(__name__)

HistoryMode = Literal["auto", "raw", "recorded"]
HISTORY_MODES: tuple[HistoryMode, ...] = ("auto", "raw", "recorded")
#: What a run read: ``auto`` resolves to one of these.
HistorySource = Literal["raw", "recorded"]
HISTORY_SOURCES: tuple[HistorySource, ...] = ("raw", "recorded")

#: The recording rules' interval: one sample per series every 5 minutes.
RECORDED_INTERVAL = "5m"
#: Where ``auto`` compares the recorded history's reach with the raw one's: at each of these
#: offsets from the scored time where the raw series have a sample, the recorded ones must
#: too (the longest window a feature reads is 30 days; Prometheus' default retention is 15).
CHECKED_OFFSETS: tuple[str, ...] = ("30d", "21d", "14d", "7d", "1d", "0s")


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


def reach_query(s: Schema, later_s: int = 0) -> str:
    """GPUs with a presence sample (power or temperature) within the presence window at each of
    :data:`CHECKED_OFFSETS` back, one series per offset (label ``offset``), in raw names: pass
    it through :func:`to_recorded` for the recorded series. ``later_s``: each past window ends
    that many seconds later (not the one ending now)."""
    names = presence_names(s)
    parts = []
    for o in CHECKED_OFFSETS:
        back = round(window_seconds(o)) - later_s if o != "0s" else 0
        offset = f" offset {back}s" if back > 0 else ""
        parts.append(
            f"label_replace(count(group by ({s.uuid}) (last_over_time("
            f'{{__name__=~"{names}"}}[{s.fresh}]{offset}))), "offset", "{o}", "", "")'
        )
    return " or ".join(parts)


def _reach(client: Querier, promql: str, at: float | None) -> dict[str, int]:
    return {
        r["metric"].get("offset", ""): int(float(r["value"][1])) for r in client.query(promql, at)
    }


def why_not_recorded(client: Querier, s: Schema, at: float | None) -> str | None:
    """None when the recorded series can stand for the raw ones at ``at``: at each of
    :data:`CHECKED_OFFSETS` they hold at least the GPUs the raw ones hold. Otherwise the
    reason, in words.

    A recorded sample is written up to one rule interval after the raw sample it copies, so a
    raw history that begins just inside a past window has its first copy just after it: the
    recorded windows in the past end one interval later than the raw ones."""
    raw = _reach(client, reach_query(s), at)
    later = reach_query(s, round(window_seconds(RECORDED_INTERVAL)))
    recorded = _reach(RecordedHistory(client), later, at)
    for offset in reversed(CHECKED_OFFSETS):
        want, have = raw.get(offset, 0), recorded.get(offset, 0)
        if have < want:
            when = "now" if offset == "0s" else f"{offset} back"
            return (
                f"the recorded history holds {have} of the {want} GPUs reporting {when} "
                "(the gpu-health-scorer-history.rules group is not loaded, or is newer than "
                "the raw history and was not backfilled)"
            )
    return None


#: The last reason logged per schema and mode (logged again only when it changes, so a serving
#: scorer does not repeat it every run).
_last_reason: dict[tuple[str, HistoryMode], str | None] = {}


def choose(client: Querier, s: Schema, at: float | None, mode: HistoryMode) -> Querier:
    """The client to read features through: ``raw`` the client itself, ``recorded`` a
    :class:`RecordedHistory` over it (with a warning where :func:`why_not_recorded` objects),
    ``auto`` the recorded one where it has no objection. Each line is logged when the choice
    or its reason changes."""
    if mode == "raw":
        return client
    reason = why_not_recorded(client, s, at)
    recorded = mode == "recorded" or reason is None
    if _last_reason.get((s.name, mode), "") != reason:
        _last_reason[(s.name, mode)] = reason
        if reason is None:
            log.info("reading the 5-minute recorded history (gpu:*:last_over_time5m)")
        elif recorded:  # read as asked, but say why the answer may be thin
            log.warning("reading recorded history as asked, but %s", reason)
        else:
            log.info("reading raw history: %s", reason)
    return RecordedHistory(client) if recorded else client
