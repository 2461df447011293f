"""Links from a failure class to its runbook, the same page the GPUFailurePredicted alert links.

The class -> runbook map is the scorer's (``gpu_health.scorer.rules.RUNBOOKS``, also in
``/api/v1/gpus``); the URL is built like the alerts' ``runbook_url`` from a pattern whose ``%s``
is the runbook's name, so a fleet that points its alerts at its own wiki can point the report
there too (``gpu-health report --runbook-url-pattern``).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from gpu_health.errors import UserError
from gpu_health.scorer.rules import RUNBOOKS

#: The mixin's default runbookURLPattern (jsonnet/config.libsonnet).
DEFAULT_RUNBOOK_URL_PATTERN = (
    "https://github.com/gpu-health-monitor/gpu-health-monitor/blob/main/docs/runbooks/%s.md"
)


def check_pattern(pattern: str, option: str = "--runbook-url-pattern") -> str:
    """An http(s) URL with exactly one ``%s``; anything else is one line naming the option."""
    if not pattern.startswith(("https://", "http://")) or pattern.count("%s") != 1:
        raise UserError(
            f"{option} {pattern!r}: expected an http(s) URL with one %s for the runbook name, "
            f"e.g. {DEFAULT_RUNBOOK_URL_PATTERN}"
        )
    if "%" in pattern.replace("%s", "", 1) or len(pattern) > 2000:
        raise UserError(f"{option} {pattern!r}: only the one %s may hold a '%', at most 2000 chars")
    return pattern


def class_runbook_url(failure_class: str, pattern: str = DEFAULT_RUNBOOK_URL_PATTERN) -> str:
    """The runbook URL of a failure class; "" for a class the scorer's map does not know."""
    path = RUNBOOKS.get(failure_class)
    if path is None:
        return ""
    return pattern % PurePosixPath(path).stem
