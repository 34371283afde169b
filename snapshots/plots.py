"""A training run's plots, drawn with the audit's SVG primitives (review.plots) from numbers only:
the loss by optimizer step, and the learning curve (test-split step AUROC by the fraction of the
train split trained on, Prodigy's train-curve)."""

from __future__ import annotations

from typing import Any

from django.utils.safestring import SafeString, mark_safe

from review.plots import frame, polyline


def loss_svg(curve: list[dict[str, Any]]) -> SafeString:
    points = [(float(p["step"]), float(p["loss"])) for p in curve if p.get("loss") is not None]
    if len(points) < 2:
        return mark_safe("")  # noqa: S308
    x0, x1 = min(x for x, _ in points), max(x for x, _ in points)
    y0, y1 = min(y for _, y in points), max(y for _, y in points)
    span_x, span_y = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    parts = frame(
        "Training loss by step",
        "optimizer step",
        "loss",
        x_ticks=[(0.0, f"{x0:g}"), (1.0, f"{x1:g}")],
        y_ticks=[(0.0, f"{y0:.3g}"), (1.0, f"{y1:.3g}")],
    )
    parts.append(
        polyline(
            [(x - x0) / span_x for x, _ in points],
            [(y - y0) / span_y for _, y in points],
            "#2a64c5",
        )
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only


def curve_svg(points: list[dict[str, Any]]) -> SafeString:
    xy = [
        (float(p["fraction"]), float(p["step_auroc"]))
        for p in points
        if p.get("step_auroc") is not None
    ]
    if len(xy) < 2:
        return mark_safe("")  # noqa: S308
    parts = frame(
        "Learning curve: test AUROC by train fraction", "fraction of the train split", "step AUROC"
    )
    parts.append(polyline([x for x, _ in xy], [y for _, y in xy], "#2a64c5"))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers only
