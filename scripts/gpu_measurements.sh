#!/usr/bin/env bash
# The GPU measurements that wait for a lent GPU, as one run (docs/benchmarks.md, "On a GPU" and
# "PRM training throughput on a GPU"): benchmarks.gpu_throughput (scoring a Qwen2.5-1.5B-shaped
# PRM) and benchmarks.train_throughput (training one), each on CUDA in bf16, logs and JSON lines
# into $OUT.
#
# On the device machine (the `device` tool's `run`), which has PyTorch, transformers and most of
# what they need but not TRL or datasets, and reaches no registry:
#   here, once:   make gpu-wheels            # steplens's versions of TRL, datasets, transformers...
#                                            # as Python 3.12 wheels in .whl/ (ignored, ~19 MB)
#   then:         run(command="bash scripts/gpu_measurements.sh", carry=[".whl"], timeout_s=600)
# Nothing here needs Django, a database or a broker: only torch, transformers, TRL and the
# engine's code (scoring/prm/).
set -uo pipefail
OUT=${OUT:-$(mktemp -d)}
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/steplens-site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/steplens-site:$PYTHONPATH"
fi
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
    "$PYTHON" - <<'EOF'
import importlib
for name in ("torch", "transformers", "trl", "datasets", "accelerate", "tokenizers", "pyarrow"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"), module.__file__)
    except Exception as error:  # a missing one is reported, the other measurement still runs
        print(name, "NOT IMPORTABLE:", repr(error))
EOF
} 2>&1 | tee "$OUT/environment.txt"

status=0
# Scoring first: it needs no TRL, so it is measured even if the training stack fails to import.
timeout "${SCORING_TIMEOUT:-240}" "$PYTHON" -m benchmarks.gpu_throughput "$@" 2>&1 |
    tee "$OUT/gpu_throughput.log" || status=1
timeout "${TRAINING_TIMEOUT:-300}" "$PYTHON" -m benchmarks.train_throughput 2>&1 |
    tee "$OUT/train_throughput.log" || status=1
grep -h '^{"benchmark"' "$OUT"/*.log >"$OUT/results.jsonl" || true
echo "results: $OUT/results.jsonl (exit $status)"
exit $status
