"""The PRM audit's plots: inline SVG drawn from numbers only (no text from the data goes into
them unescaped)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

W, H, PAD = 320, 240, 36


def _x(v: float) -> float:
    return PAD + v * (W - PAD - 10)


def _y(v: float) -> float:
    return H - PAD - v * (H - PAD - 10)


UNIT_TICKS = [(t, f"{t:g}") for t in (0.0, 0.25, 0.5, 0.75, 1.0)]


def frame(
    title: str,
    x_label: str,
    y_label: str,
    x_ticks: Sequence[tuple[float, str]] | None = None,
    y_ticks: Sequence[tuple[float, str]] | None = None,
) -> list[str]:
    """The opening of a plot on the unit square: axes, ticks (at positions in [0, 1], with their
    labels), grid lines and axis names; callers add their marks and the closing tag."""
    parts = [
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg" font-size="10" font-family="sans-serif">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{PAD}" y="10" width="{W - PAD - 10}" height="{H - PAD - 10}" fill="#fafbfc" '
        'stroke="#c9ced6"/>',
    ]
    for at, label in x_ticks or UNIT_TICKS:
        last = at >= 0.999  # the last label ends at the edge, inside the plot
        parts.append(
            f'<text x="{_x(at) + (4 if last else 0):.1f}" y="{H - PAD + 12}" '
            f'text-anchor="{"end" if last else "middle"}">{escape(label)}</text>'
        )
    for tick, label in y_ticks or UNIT_TICKS:
        parts.append(
            f'<text x="{PAD - 4}" y="{_y(tick) + 3:.1f}" text-anchor="end">{escape(label)}</text>'
        )
        parts.append(
            f'<line x1="{PAD}" x2="{W - 10}" y1="{_y(tick):.1f}" y2="{_y(tick):.1f}" '
            'stroke="#e3e6ea"/>'
        )
    parts.append(
        f'<text x="{(PAD + W - 10) / 2}" y="{H - 6}" text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="10" y="{(H - PAD) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 10 {(H - PAD) / 2})">{escape(y_label)}</text>'
    )
    return parts


def polyline(xs: Sequence[float], ys: Sequence[float | None], colour: str) -> str:
    points = " ".join(
        f"{_x(x):.1f},{_y(y):.1f}"
        for x, y in zip(xs, ys, strict=True)
        if y is not None and not math.isnan(y)
    )
    return f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'


def calibration_svg(bins: Sequence[dict[str, Any]], ece: float | None) -> SafeString:
    """Reliability diagram: fraction of correct steps per score bin, against the diagonal."""
    parts = frame(
        f"Calibration, positive class (ECE {ece:.3f})" if ece is not None else "Calibration",
        "PRM score",
        "fraction correct",
    )
    parts.append(
        f'<line x1="{_x(0)}" y1="{_y(0)}" x2="{_x(1)}" y2="{_y(1)}" stroke="#999" '
        'stroke-dasharray="4 3"/>'
    )
    for b in bins:
        if not b["count"]:
            continue
        x0, x1 = _x(b["low"]) + 1, _x(b["high"]) - 1
        top = _y(b["fraction_correct"])
        parts.append(
            f'<rect x="{x0:.1f}" y="{top:.1f}" width="{x1 - x0:.1f}" '
            f'height="{_y(0) - top:.1f}" fill="#2a64c5" fill-opacity="0.7">'
            f"<title>{b['low']:.1f}–{b['high']:.1f}: {b['count']} steps, "
            f"{b['fraction_correct']:.2f} correct</title></rect>"
        )
        # The bin's mean score against its fraction correct: on the diagonal when calibrated.
        parts.append(
            f'<circle cx="{_x(b["mean_score"]):.1f}" cy="{top:.1f}" r="3" fill="#c0392b"/>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped titles only


def roc_svg(roc: dict[str, list[float]], auroc: float | None) -> SafeString:
    parts = frame(
        f"ROC (AUROC {auroc:.3f})" if auroc is not None else "ROC",
        "false positive rate (wrong steps passed)",
        "true positive rate",
    )
    parts.append(
        f'<line x1="{_x(0)}" y1="{_y(0)}" x2="{_x(1)}" y2="{_y(1)}" stroke="#999" '
        'stroke-dasharray="4 3"/>'
    )
    parts.append(polyline(roc["fpr"], roc["tpr"], "#2a64c5"))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308


def f1_svg(curve: dict[str, list[float]], threshold: float, best: float | None) -> SafeString:
    parts = frame("ProcessBench F1 by threshold", "threshold", "F1")
    parts.append(polyline(curve["thresholds"], curve["f1"], "#1e7b45"))
    parts.append(
        f'<line x1="{_x(threshold):.1f}" x2="{_x(threshold):.1f}" y1="10" y2="{_y(0)}" '
        'stroke="#c0392b" stroke-dasharray="3 2"><title>threshold in use</title></line>'
    )
    if best is not None and 0 <= best <= 1:
        parts.append(
            f'<line x1="{_x(best):.1f}" x2="{_x(best):.1f}" y1="10" y2="{_y(0)}" '
            'stroke="#1e7b45" stroke-dasharray="1 2"><title>best threshold</title></line>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308


def position_svg(rows: Sequence[dict[str, Any]]) -> SafeString:
    """Verdict accuracy and gold error rate by step position."""
    n = len(rows)
    xs = [i / max(1, n - 1) for i in range(n)]
    ticks = [(xs[i], rows[i]["position"]) for i in range(0, n, 2)]
    parts = frame("By step position", "step position (0-based)", "rate", x_ticks=ticks)
    parts.append(polyline(xs, [r["accuracy"] for r in rows], "#2a64c5"))
    parts.append(polyline(xs, [r["error_rate"] for r in rows], "#c0392b"))
    parts.append(
        f'<text x="{PAD + 6}" y="22" fill="#2a64c5">accuracy</text>'
        f'<text x="{PAD + 6}" y="34" fill="#c0392b">gold error rate</text></svg>'
    )
    return mark_safe("".join(parts))  # noqa: S308
