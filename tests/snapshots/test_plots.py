"""The training run's loss plot: readable for a real run (hundreds of noisy optimizer steps)."""

from __future__ import annotations

import random
import re

from snapshots.plots import loss_svg


def _tick_labels(svg: str) -> list[str]:
    return re.findall(r'text-anchor="(?:middle|end)">([^<]+)</text>', svg)


def test_a_long_noisy_run_gets_ticks_between_its_ends_and_a_smoothed_line() -> None:
    """A run of 1,236 steps whose loss falls from about 0.69 to 0.3 with noise of +-0.25 per step:
    the plot names round steps and losses between the ends (not only min and max), draws the
    moving average over the raw steps, each named in a legend, and a spike leaves the scale to the
    rest."""
    rng = random.Random(0)
    curve = [
        {"step": s, "loss": 0.69 - 0.39 * s / 1236 + rng.uniform(-0.25, 0.25)}
        for s in range(1, 1237)
    ]
    curve[600]["loss"] = 6.0  # one bad batch does not flatten the rest
    svg = str(loss_svg(curve))
    labels = _tick_labels(svg)
    assert {"250", "500", "750", "1000"} <= set(labels), labels
    y_labels = re.findall(r'<text x="32" y="[^"]+" text-anchor="end">([^<]+)</text>', svg)
    assert float(y_labels[-1]) <= 2.0, y_labels  # the bad batch is drawn at the edge
    assert len(y_labels) >= 4 and all(re.fullmatch(r"[01](\.\d\d?)?", t) for t in y_labels), (
        y_labels
    )
    lines = re.findall(r'<polyline points="([^"]+)"', svg)
    assert len(lines) == 2  # each step, and the moving average over it

    def ys(points: str) -> list[float]:
        return [float(p.split(",")[1]) for p in points.split()]

    raw, smooth = ys(lines[0]), ys(lines[1])
    wiggle = lambda v: sum(abs(a - b) for a, b in zip(v, v[1:], strict=False))  # noqa: E731
    assert wiggle(smooth) < wiggle(raw) / 5
    assert smooth[-1] > smooth[len(smooth) // 10]  # the loss falls (an SVG's y grows downwards)
    assert "each step" in svg and "moving average" in svg


def test_a_short_run_draws_its_steps_without_smoothing() -> None:
    curve = [{"step": 1, "loss": 0.69}, {"step": 2, "loss": 0.68}]
    svg = str(loss_svg(curve))
    assert _tick_labels(svg)[:2] == ["1", "2"]  # whole optimizer steps (it said 1.2, 1.4...)
    assert len(re.findall("<polyline", svg)) == 1
    assert "moving average" not in svg
    assert loss_svg(curve[:1]) == ""  # one point is no curve


def test_doctests() -> None:  # round ticks and the moving average, by example
    import doctest

    from snapshots import plots

    assert doctest.testmod(plots).failed == 0
