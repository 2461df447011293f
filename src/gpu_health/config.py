"""Loading and validating YAML configuration with errors that point at the key.

Every configuration file of the project (health policy, economics, web config, simulator faults)
goes through :func:`load_yaml` and the small ``expect_*`` helpers here, so an operator always gets
``file: key.path: what is wrong (allowed: ...)`` and never a traceback.
"""

from __future__ import annotations

import math
import re
import reprlib
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gpu_health.errors import ConfigError

#: A configuration file is small (a policy, a web config, a list of faults): a larger one is a
#: mistake (a wrong path, /dev/zero) that must not be read into memory.
MAX_CONFIG_BYTES = 1 << 20
#: Values a document may stand for once its aliases (*name) are expanded. A few lines of nested
#: aliases stand for billions ("billion laughs"); validating or printing them never ends.
MAX_EXPANDED_VALUES = 100_000

_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 60
_SHOW.maxlist = _SHOW.maxdict = _SHOW.maxtuple = _SHOW.maxset = 4
_SHOW.maxlevel = 2


def show(value: Any) -> str:
    """``repr(value)`` cut short, for error messages: a value from a file may be huge."""
    return _SHOW.repr(value)


def read_text_file(path: Path | str, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """A regular UTF-8 file of at most ``max_bytes``; anything else is a one-line ConfigError."""
    path = Path(path)
    try:
        mode = path.stat().st_mode  # before open: opening a FIFO would wait for a writer
        if stat.S_ISDIR(mode):
            raise ConfigError(str(path), "", "is a directory, not a file")
        if not stat.S_ISREG(mode):  # a FIFO, a device such as /dev/zero
            raise ConfigError(str(path), "", "not a regular file")
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise ConfigError(str(path), "", f"larger than {max_bytes // 1024} KiB; not read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None


def load_yaml(path: Path | str, *, unique_keys: bool = False) -> Any:
    """Parse a YAML file; a syntax error names the file, line and column. ``unique_keys``: a key
    repeated in one mapping is an error (as Go's yaml.UnmarshalStrict has it) instead of the last
    one silently winning."""
    return parse_yaml(read_text_file(path), str(path), unique_keys=unique_keys)


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


def _expanded_values(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """How many values ``node`` stands for with every alias expanded (a node an alias repeats
    is counted each time, computed once); a node inside itself is infinite."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        return MAX_EXPANDED_VALUES + 1
    open_.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children: list[yaml.Node] = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    for child in children:
        total += _expanded_values(child, sizes, open_)
        if total > MAX_EXPANDED_VALUES:
            break
    open_.discard(key)
    sizes[key] = total
    return total


def parse_yaml(text: str, source: str, *, unique_keys: bool = False) -> Any:
    """Parse YAML text; ``source`` names it in errors. Aliases are allowed as long as the
    document they expand to stays small (:data:`MAX_EXPANDED_VALUES`)."""
    try:
        loader = (_UniqueKeyLoader if unique_keys else yaml.SafeLoader)(text)
    except yaml.reader.ReaderError as exc:  # raised while the loader checks the text
        raise ConfigError(source, "", _unreadable_character(text, exc)) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_values(node, {}, set()) > MAX_EXPANDED_VALUES:
            raise ConfigError(
                source,
                "",
                f"its aliases (*name) expand it to more than {MAX_EXPANDED_VALUES:,} values; "
                "not read",
            )
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(source, "", f"invalid YAML at {where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"invalid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(source, "", "invalid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as exc:  # an integer of thousands of digits
        raise ConfigError(source, "", f"invalid YAML value: {show(str(exc))}") from None
    finally:
        loader.dispose()


def _unreadable_character(text: str, exc: yaml.reader.ReaderError) -> str:
    """Where and which character YAML does not allow, in one line. PyYAML refuses a control
    character, or a byte that is not UTF-8 (read from the command line as a lone surrogate),
    while its loader is built, in a message over several lines: a control character in a web
    config, health policy, faults file or economics parameters ended in a traceback."""
    position = max(0, min(exc.position, len(text)))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1])
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as Python reads it from argv
        what = f"a byte that is not UTF-8 (0x{code - 0xDC00:02x})"
    else:
        what = f"the character U+{code:04X}, which YAML does not allow"
    return f"invalid YAML at line {line}, column {column}: {what}"


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
            join_key(key, show(unknown[0])[1:-1]),  # cut short, without its quotes
            f"unknown key (allowed: {', '.join(sorted(allowed))})",
        )


#: A decimal number with an exponent, as YAML 1.2 and JSON write it (``1e9``, ``-2.5E-3``,
#: ``.5e2``); ASCII digits only (``\d`` would take other scripts' digits, which float() reads).
_SCIENTIFIC = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


def expect_number(
    value: Any,
    source: str,
    key: str,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """A finite number within [minimum, maximum].

    A string in scientific notation (``1e9``, ``3e4``) is a number too: YAML 1.1, which PyYAML
    follows, reads an exponent without a decimal point as a string, so ``purchase_price: 3e4``
    or ``--set models.h100.repair_cost=1e9`` was refused as "expected a number". Any other
    string still is; the converted value passes the same finite and range checks.
    """
    given = value
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value):
        value = float(value)  # at worst inf (1e999), refused below as not finite
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(source, key, f"expected a number, got {show(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        number = math.inf if value > 0 else -math.inf
    if not math.isfinite(number):
        raise ConfigError(source, key, f"expected a finite number, got {show(given)}")
    low = "-inf" if minimum is None else f"{minimum:g}"
    high = "inf" if maximum is None else f"{maximum:g}"
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(source, key, f"{number:g} is out of range (allowed: {low} to {high})")
    return number


def expect_int(
    value: Any, source: str, key: str, minimum: int | None = None, maximum: int | None = None
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(source, key, f"expected an integer, got {show(value)}")
    expect_number(value, source, key, minimum, maximum)
    return value


def expect_str(value: Any, source: str, key: str, choices: set[str] | None = None) -> str:
    if not isinstance(value, str):
        raise ConfigError(source, key, f"expected a string, got {show(value)}")
    if choices is not None and value not in choices:
        raise ConfigError(
            source, key, f"{show(value)} is not allowed (allowed: {', '.join(sorted(choices))})"
        )
    return value


def expect_bool(value: Any, source: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(source, key, f"expected true or false, got {show(value)}")
    return value
