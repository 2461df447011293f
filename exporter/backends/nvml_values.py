"""Small conversions between NVML's answers and our units and names (no NVML state)."""

from __future__ import annotations

import ctypes
from typing import Any


def handle_key(handle: Any) -> Any:
    """Real handles are ctypes pointers (compare by address); fakes are hashable values."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return handle


def error_name(codes: Any, exc: Exception) -> str:
    value = getattr(exc, "value", None)
    for name in dir(codes):
        if name.startswith("NVML_ERROR_") and getattr(codes, name) == value:
            return name.removeprefix("NVML_ERROR_").lower()
    return "unknown" if value is None else str(value)


def raw_field_value(codes: Any, value: Any) -> Any:
    """A field value's number as NVML typed it (int or float; None for an unknown type)."""
    attr = {
        codes.NVML_VALUE_TYPE_DOUBLE: "dVal",
        codes.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
        codes.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
        codes.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
        codes.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
        codes.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
    }.get(int(value.valueType))
    return None if attr is None else getattr(value.value, attr, None)


def field_value(codes: Any, value: Any) -> float | None:
    raw = raw_field_value(codes, value)
    return None if raw is None else float(raw)


def as_float(value: Any) -> float | None:
    return None if value is None else float(value)


def as_int(value: Any) -> int | None:
    return None if value is None else int(value)


def scale(value: Any, factor: float) -> float | None:
    return None if value is None else float(value) * factor


def div(value: Any, divisor: float) -> float | None:
    """Unit conversion by division: 73361 mW / 1000 is exactly 73.361, unlike * 1e-3."""
    return None if value is None else float(value) / divisor
