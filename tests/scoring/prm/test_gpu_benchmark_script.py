"""benchmarks/gpu_throughput.py can only be measured on a GPU; this runs it at a tiny shape on
the CPU so that it keeps working until one is lent: it must load its model through the engine,
score real traces, and find the batched scores equal to the one-prefix-at-a-time ones."""

from __future__ import annotations

import json

from benchmarks import gpu_throughput


def test_gpu_benchmark_runs_at_a_tiny_shape_on_cpu(capsys):
    args = "--shape tiny --device cpu --dtype fp32 --per-subset 2 --naive-traces 3"
    assert gpu_throughput.main([*args.split(), "--matmul-size", "256", "--repeats", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["traces"] == 8 and result["steps_scored"] > 8
    assert result["max_abs_diff"] <= 1e-5
    assert result["fraction_of_bound"] > 0 and result["non_embedding_params"] > 0
