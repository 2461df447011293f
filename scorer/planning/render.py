"""The plan as terminal text and as an HTML section (for ``gpu-health plan`` and the report)."""

from __future__ import annotations

import html
import math

from gpu_health.scorer.planning.plan import DIMENSIONS, FleetPlan, GroupPlan

_HEADERS = ("group", "GPUs", "expected", "interval", "P(inside)", "spares", "GPU-h at risk")
#: A computed probability this close to 0 or 1 is rounding in the sums (the tolerance of
#: :func:`~gpu_health.scorer.planning.poibin.quantile`): an interval over every count holds
#: 0.9999999999999998, which is 100 %.
SUM_ROUNDING = 1e-12


def percent(fraction: float, rounding: float = 0.0) -> str:
    """``fraction`` as a percentage (no sign), to two significant digits of its distance from
    0 % or 100 %, whichever is nearer: ``--service-level 0.9999999999`` printed "runs out with
    probability at most 0 %", and a probability near 1 read "100%". Whole percents where the
    distance is 10 or more (the defaults print "5", "80" as before); a distance under
    ``rounding`` (a fraction) is shown as that end."""
    value = 100.0 * fraction
    if not math.isfinite(value):
        return str(value)
    gap = min(abs(value), abs(100.0 - value))
    if gap == 0.0 or gap < 100.0 * rounding:
        return f"{value:.0f}"
    decimals = max(0, 1 - math.floor(math.log10(gap)))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _cells(g: GroupPlan) -> tuple[str, ...]:
    return (
        g.group,
        str(g.gpus),
        f"{g.expected:.2f}",
        f"{g.lower}-{g.upper}",
        f"{percent(g.interval_probability, SUM_ROUNDING)}%",
        str(g.spares),
        f"{g.capacity_at_risk_gpu_hours:,.0f}",
    )


def _horizons(plan: FleetPlan) -> list[str]:
    return sorted({g.horizon for g in plan.groups}, key=lambda h: float(h.rstrip("d")))


def _notes(plan: FleetPlan) -> list[str]:
    notes = [
        f"expected = sum of per-GPU failure probabilities; interval = the count's central "
        f"{percent(plan.level)} % interval (exact Poisson-binomial); spares = stock that runs "
        f"out with probability at most {percent(1 - plan.service_level)} % within the horizon"
    ]
    if plan.extrapolated:
        notes.append(
            f"{', '.join(plan.extrapolated)}: the failure model has no such horizon; "
            "probabilities were stretched from the longest shorter one at a constant hazard"
        )
    if plan.skipped:
        notes.append(f"{plan.skipped} GPUs without a failure probability are left out")
    return notes


def render_text(plan: FleetPlan) -> str:
    lines: list[str] = []
    for horizon in _horizons(plan):
        for dimension in DIMENSIONS:
            rows = [_cells(g) for g in plan.select(dimension, horizon)]
            if not rows:
                continue
            lines.append(f"Failures in the next {horizon}, by {dimension}")
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADERS)]
            fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
            lines.append("  " + fmt.format(*_HEADERS))
            lines += ["  " + fmt.format(*r) for r in rows]
            lines.append("")
    if not lines:
        return "No GPU has a failure probability: is gpu-health-scorer running and scraped?\n"
    lines += _notes(plan)
    return "\n".join(lines) + "\n"


def render_html(plan: FleetPlan) -> str:
    """A self-contained ``<section>`` (uses the report's table classes when embedded)."""
    e = html.escape
    parts = ["<section id='fleet-plan'><h2>Fleet planning</h2>"]
    for horizon in _horizons(plan):
        for dimension in DIMENSIONS:
            rows = plan.select(dimension, horizon)
            if not rows:
                continue
            parts.append(
                f"<h3>Failures in the next {e(horizon)}, by {e(dimension)}</h3><table><tr>"
            )
            parts.append("".join(f"<th>{e(h)}</th>" for h in _HEADERS) + "</tr>")
            for g in rows:
                cells = _cells(g)
                parts.append(
                    "<tr><td>"
                    + e(cells[0])
                    + "</td>"
                    + "".join(f"<td class='num'>{e(c)}</td>" for c in cells[1:])
                    + "</tr>"
                )
            parts.append("</table>")
    parts += [f"<p class='note'>{e(n)}</p>" for n in _notes(plan)]
    parts.append("</section>")
    return "\n".join(parts)
