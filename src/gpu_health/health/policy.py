"""The health policy: weights, grade bands, caps, thresholds and per-model limits, from YAML.

The numbers live in a file, not in code, because fleets differ (an operator who power-caps on
purpose wants ``power_limit_reduced`` off) and because every number should be reviewable next to
its source in ``docs/health-model.md``. The shipped defaults are ``default_policy.yaml`` in this
package; an operator's file is an overlay on them, validated with the same rules so that a bad
value is reported as ``file: key.path: problem (allowed: a to b)``.

The policy's types are in :mod:`.policy_types` and its YAML parsing in :mod:`.policy_parse`; this
module is the entry point, and still names ``Policy``, ``Limits``, ``Thresholds`` and
``parse_policy`` for the modules that import them from here.
"""

from __future__ import annotations

from pathlib import Path

from gpu_health.config import load_yaml
from gpu_health.health.policy_parse import parse_policy
from gpu_health.health.policy_types import Limits, Policy, Thresholds

# What other modules import from here; the rest of the types are in policy_types.
__all__ = [
    "DEFAULT_POLICY_PATH",
    "Limits",
    "Policy",
    "Thresholds",
    "load_default_policy",
    "load_policy",
    "parse_policy",
]

#: The shipped defaults (package data).
DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.yaml")


def load_default_policy() -> Policy:
    return parse_policy(load_yaml(DEFAULT_POLICY_PATH), str(DEFAULT_POLICY_PATH))


def load_policy(path: Path | str | None) -> Policy:
    """The shipped defaults, overlaid with the operator's file when one is given.

    Raises :class:`~gpu_health.errors.ConfigError` naming the file, key path and allowed range.
    """
    defaults = load_default_policy()
    if path is None:
        return defaults
    return parse_policy(load_yaml(path, unique_keys=True), str(path), base=defaults)
