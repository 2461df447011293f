"""Loading and validating YAML configuration with errors that point at the key.

Every configuration file of the project (health policy, economics, web config, simulator faults)
goes through :func:`load_yaml` and the small ``expect_*`` helpers here, so an operator always gets
``file: key.path: what is wrong (allowed: ...)`` and never a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gpu_health.errors import ConfigError


def load_yaml(path: Path | str, *, unique_keys: bool = False) -> Any:
    """Parse a YAML file; a syntax error names the file, line and column. ``unique_keys``: a key
    repeated in one mapping is an error (as Go's yaml.UnmarshalStrict has it) instead of the last
    one silently winning."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None
    return parse_yaml(text, str(path), unique_keys=unique_keys)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader refusing a key repeated within one mapping."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str, *, unique_keys: bool = False) -> Any:
    """Parse YAML text; ``source`` names it in errors."""
    try:
        if unique_keys:
            return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(source, "", f"invalid YAML at {where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"invalid YAML: {exc}") from None


def join_key(parent: str, key: str | int) -> str:
    """``a.b`` for mapping keys, ``a[3]`` for list indices."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def expect_mapping(value: Any, source: str, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(source, key, f"expected a mapping, got {type(value).__name__}")
    return value


def reject_unknown(
    mapping: Mapping[str, Any], allowed: set[str] | frozenset[str], source: str, key: str
) -> None:
    """Typos are errors: an unknown key names the keys that are allowed there."""
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise ConfigError(
            source,
            join_key(key, unknown[0]),
            f"unknown key (allowed: {', '.join(sorted(allowed))})",
        )


def expect_number(
    value: Any,
    source: str,
    key: str,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """A finite number within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(source, key, f"expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ConfigError(source, key, f"expected a finite number, got {value!r}")
    low = "-inf" if minimum is None else f"{minimum:g}"
    high = "inf" if maximum is None else f"{maximum:g}"
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(source, key, f"{number:g} is out of range (allowed: {low} to {high})")
    return number


def expect_int(
    value: Any, source: str, key: str, minimum: int | None = None, maximum: int | None = None
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(source, key, f"expected an integer, got {value!r}")
    expect_number(value, source, key, minimum, maximum)
    return value


def expect_str(value: Any, source: str, key: str, choices: set[str] | None = None) -> str:
    if not isinstance(value, str):
        raise ConfigError(source, key, f"expected a string, got {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(
            source, key, f"{value!r} is not allowed (allowed: {', '.join(sorted(choices))})"
        )
    return value


def expect_bool(value: Any, source: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(source, key, f"expected true or false, got {value!r}")
    return value
