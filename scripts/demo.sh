#!/usr/bin/env bash
# The zero-setup demo: SQLite, the embedded filesystem broker, demo data and accounts, web + worker.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_DEBUG=${DJANGO_DEBUG:-1}
PY=.venv/bin/python
HOST=${DEMO_HOST:-127.0.0.1}
PORT=${DEMO_PORT:-8000}

$PY manage.py migrate --noinput
$PY manage.py demo_setup

$PY -m celery -A config worker --loglevel=INFO --concurrency=1 -Q interactive,bulk,celery,train \
  >var/worker.log 2>&1 &
WORKER_PID=$!
trap 'kill $WORKER_PID 2>/dev/null || true' EXIT INT TERM
echo "A Celery worker is running (pid $WORKER_PID, log var/worker.log)."
echo
echo "Open http://$HOST:$PORT/ and log in with one of the accounts above. Ctrl-C stops the demo."
$PY manage.py runserver "$HOST:$PORT"
