"""Tables (issue 17): drawing a 10,000-cell table, and the tool backend's table checks on a
1,000-step trace with a 200-row table.

    .venv/bin/python -m benchmarks.tables_and_checks
"""

from __future__ import annotations

import os
import time


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from annotate.rendering import render_table
    from scoring.prm import build_scorer
    from scoring.prm.contract import TraceInput

    header = [f"col {i}" for i in range(10)]
    for label, rows in (
        ("plain", [[f"r{r}"] + [str(r * 10 + i) for i in range(9)] for r in range(999)]),
        ("math", [[f"${r}\\times{i}$" for i in range(10)] for r in range(999)]),
    ):
        start = time.perf_counter()
        html = render_table(header, rows)
        elapsed = time.perf_counter() - start
        print(f"render_table, 10,000 {label} cells: {elapsed:.2f} s, {len(html):,} characters")

    table = {
        "header": ["quarter", "revenue", "costs"],
        "rows": [[f"Q{i}", str(100 + i), str(50 + i)] for i in range(200)],
    }
    # Every seventh reading is one off: 145 wrong lookups in 1,000 steps.
    steps = [f"From the table, Q{i} revenue is {100 + i + (i % 7 == 0)}." for i in range(200)] * 5
    tool = build_scorer("tool")
    for label, given in (("no table", None), ("a 200-row table", table)):
        start = time.perf_counter()
        (out,) = tool.score([TraceInput("q", steps, table=given)])
        elapsed = time.perf_counter() - start
        failed = sum(
            any(c["source"] == "table" and not c["ok"] for c in s.details["checks"])
            for s in out.steps
        )
        print(f"tool, 1,000 steps, {label}: {elapsed:.2f} s, {failed} steps fail a table check")


if __name__ == "__main__":
    main()
