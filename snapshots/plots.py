"""A training run's plots, drawn with the audit's SVG primitives (review.plots) from numbers only:
the loss by optimizer step, and the learning curve (test-split step AUROC by the fraction of the
train split trained on, Prodigy's train-curve)."""

from __future__ import annotations

import math
from typing import Any

from django.utils.safestring import SafeString, mark_safe

from review.plots import W, frame, polyline


def nice_ticks(lo: float, hi: float, n: int = 5, *, whole: bool = False) -> list[float]:
    """About `n` round values (1, 2, 2.5 or 5 times a power of ten apart; whole numbers only with
    `whole`) covering [lo, hi]: the first at or below `lo`, the last at or above `hi`.

    >>> nice_ticks(1, 1236, 6)
    [0.0, 250.0, 500.0, 750.0, 1000.0, 1250.0]
    >>> nice_ticks(0.26, 0.88)
    [0.2, 0.4, 0.6, 0.8, 1.0]
    >>> nice_ticks(1, 2, 6, whole=True)  # optimizer steps: never 1.2
    [1.0, 2.0]
    """
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, n - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    if whole:
        step = max(1.0, float(math.ceil(step)))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


SMOOTHING = 0.9  # TensorBoard's default-like weight of the moving average
SMOOTH_FROM = 20  # steps: a shorter run is drawn as it is


def moving_average(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """The exponential moving average, debiased at the start (TensorBoard's smoothing).

    >>> [round(v, 3) for v in moving_average([1.0, 0.0, 0.0], weight=0.5)]
    [1.0, 0.333, 0.143]
    """
    out, acc = [], 0.0
    for i, v in enumerate(values, start=1):
        acc = weight * acc + (1 - weight) * v
        out.append(acc / (1 - weight**i))
    return out


def loss_svg(curve: list[dict[str, Any]]) -> SafeString:
    """The loss by optimizer step: each step's loss, and over it (from SMOOTH_FROM steps) its
    moving average, on round ticks; the scale then covers the average and the steps between the
    2nd and 98th percentiles (a spike is drawn at the plot's edge)."""
    points = [(float(p["step"]), float(p["loss"])) for p in curve if p.get("loss") is not None]
    if len(points) < 2:
        return mark_safe("")  # noqa: S308
    xs_raw, ys_raw = [x for x, _ in points], [y for _, y in points]
    smooth = len(points) >= SMOOTH_FROM
    averaged = moving_average(ys_raw) if smooth else []
    shown = ys_raw
    if smooth:  # the scale ignores the noisiest steps (TensorBoard's "ignore outliers" scaling)
        ranked = sorted(ys_raw)
        shown = [*averaged, ranked[len(ranked) // 50], ranked[-1 - len(ranked) // 50]]
    x_ticks = nice_ticks(min(xs_raw), max(xs_raw), 6, whole=True)
    y_ticks = nice_ticks(min(shown), max(shown))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def fx(v: float) -> float:
        return (v - x0) / (x1 - x0)

    def fy(v: float) -> float:  # a step off the scale is drawn at its edge
        return min(1.0, max(0.0, (v - y0) / (y1 - y0)))

    parts = frame(
        "Training loss by step",
        "optimizer step",
        "loss",
        x_ticks=[(fx(t), f"{t:g}") for t in x_ticks],
        y_ticks=[(fy(t), f"{t:g}") for t in y_ticks],
    )
    xs = [fx(x) for x in xs_raw]
    parts.append(polyline(xs, [fy(y) for y in ys_raw], "#9db7e4" if smooth else "#2a64c5"))
    if smooth:
        parts.append(polyline(xs, [fy(y) for y in averaged], "#1d4ea3"))
        halo = 'stroke="#fafbfc" stroke-width="4" paint-order="stroke"'  # legible over the lines
        parts.append(
            f'<text x="{W - 94}" y="22" fill="#5f86c9" {halo}>each step</text>'
            f'<text x="{W - 94}" y="34" fill="#1d4ea3" {halo}>moving average</text>'
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
