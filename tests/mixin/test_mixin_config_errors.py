"""A wrong runbookURLPattern fails with a message naming the field and the fix, not with a
std.format error ("Too many values to format", "Unrecognised conversion type")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import _jsonnet
import pytest

JSONNET = Path(__file__).resolve().parents[2] / "jsonnet"
FIX = "runbookURLPattern must contain %s exactly once (the alert name); write a literal % as %%"


def alerts(pattern: str) -> dict[str, Any]:
    config = f"{{ _config+:: {{ runbookURLPattern: {json.dumps(pattern)} }} }}"
    snippet = f"((import 'mixin.libsonnet') + {config}).prometheusAlerts"
    result: dict[str, Any] = json.loads(
        _jsonnet.evaluate_snippet("cfg", snippet, jpathdir=[str(JSONNET)])
    )
    return result


@pytest.mark.parametrize(
    "pattern",
    [
        "https://wiki.example.com/gpu/runbooks",  # no %s
        "https://wiki.example.com/GPU%20Runbooks/%s",  # a URL-encoded space, unescaped
        "https://wiki.example.com/%(alert)s",  # a named conversion
        "https://wiki.example.com/%s/%s",  # two
    ],
)
def test_a_wrong_runbook_pattern_names_the_field_and_the_fix(pattern: str) -> None:
    with pytest.raises(RuntimeError) as raised:
        alerts(pattern)
    assert FIX in str(raised.value)


def test_an_escaped_percent_renders_literally() -> None:
    doc = alerts("https://wiki.example.com/GPU%%20Runbooks/%s")
    urls = {r["alert"]: r["annotations"]["runbook_url"] for g in doc["groups"] for r in g["rules"]}
    assert urls["GPUFallenOffBus"] == "https://wiki.example.com/GPU%20Runbooks/GPUFallenOffBus"
