"""The HTML report template: hostile label values are shown as text, never run as markup."""

from __future__ import annotations

from html.parser import HTMLParser

from gpu_health.report import html
from gpu_health.report.model import AlertRow, FleetReport, RiskRow, XidRow

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'


class _Page(HTMLParser):
    """Collects the element names and the text of a page, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _hostile_report() -> FleetReport:
    report = FleetReport(
        prometheus=f"http://prom/{IMG}",
        generated_at=1_700_000_000,
        period="6h",
        schema="ours",
        gpu_count=1,
        grades={"excellent": 0, "good": 0, "fair": 1, "poor": 0, "critical": 0},
        scores=[61.0],
        actions={"keep": 0, "repurpose": 0, "sell": 1, "decommission": 0},
        npv_by_action={"sell": 1200.0},
    )
    report.risks = [
        RiskRow(
            uuid=f"GPU-{IMG}",
            node=f"node{IMG}",
            model=f"NVIDIA {SCRIPT}",
            gpu="0",
            p7=0.2,
            p30=0.7,
            health=61.0,
            factors=[("ecc_corrected_per_day_24h", 0.92), (f"feature{SCRIPT}", 0.4)],
            action="sell",
            npv={"sell": 1200.0},
            # a class label this version does not know: shown as text, never as a link
            failure_class=f"class{SCRIPT}",
            failure_class_probability=0.5,
        )
    ]
    report.xids = [XidRow(node=f"n{SCRIPT}", uuid="GPU-1", xid=IMG, count=2)]
    report.alerts = [AlertRow(f"Alert{SCRIPT}", "warning", "n", "GPU-1", True)]
    report.trends = {f"mean{SCRIPT}": [(0.0, 1.0), (3600.0, 2.0)]}
    report.notes = [f"note {SCRIPT}"]
    return report


def test_hostile_label_values_are_escaped_text() -> None:
    page = _Page()
    page.feed(html.render(_hostile_report()))
    assert "script" not in page.tags and "img" not in page.tags
    assert all(name != "onerror" for name, _ in page.attributes)
    text = "".join(page.text)
    # Every hostile value is still shown, as the literal text an operator can read.
    assert f"NVIDIA {SCRIPT}" in text
    assert f"node{IMG}" in text
    assert f"feature{SCRIPT} +0.40" in text
    assert f"Alert{SCRIPT}" in text and f"note {SCRIPT}" in text
    assert f"Trend: mean{SCRIPT}" in text
    assert f"class{SCRIPT}" in text and "a" not in page.tags


def test_sections_and_charts_are_rendered() -> None:
    page = html.render(_hostile_report())
    for chart in ("grades", "health-distribution", "actions"):
        assert f'data-chart="{chart}"' in page
    for heading in ("GPUs ranked by failure risk", "Recommended actions", "XIDs in the last 6h"):
        assert f"<h2>{heading}</h2>" in page
    assert "<td class='num'>70.0%</td>" in page and "1,200" in page
    assert "class='crit'" in page  # p30 >= 50 % is highlighted
    # Risk factors read as words, with the feature name as the tooltip.
    assert (
        '<span title="ecc_corrected_per_day_24h">corrected memory errors per day, last 24 h'
        "</span> +0.92"
    ) in page


def test_a_child_template_can_replace_one_section() -> None:
    """New sections or columns extend the page by blocks, without copying it."""
    child = html.environment().from_string(
        '{% extends "report.html.j2" %}{% block notes %}<p id="extra">{{ report.period }}</p>'
        "{{ super() }}{% endblock %}"
    )
    report = _hostile_report()
    page = child.render(report=report, when="now", charts=html.charts(report))
    assert '<p id="extra">6h</p>' in page and "GPUs ranked by failure risk" in page
    assert "&lt;script&gt;" in page and SCRIPT not in page
