#!/usr/bin/env bash
# The whole test suite: on SQLite and, side by side, the database-facing tests on PostgreSQL; then the
# browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PG_TEST_URL=${PG_TEST_URL:-postgres://postgres@127.0.0.1:5432/steplens}

echo "== lint"
.venv/bin/ruff check .

echo "== dependency rules between the apps (import-linter, [tool.importlinter] in pyproject.toml)"
.venv/bin/lint-imports

echo "== docker-compose.yml (the production shape) is valid"
if command -v docker-compose >/dev/null 2>&1; then
  SECRET_KEY=ci POSTGRES_PASSWORD=ci docker-compose -f docker-compose.yml config -q
elif [ "${REQUIRE_POSTGRES:-0}" = 1 ]; then
  echo "docker-compose is not installed (CI installs it in .ci/run): failing." >&2
  exit 1
else
  echo "WARNING: docker-compose is not installed; docker-compose.yml was not validated." >&2
fi

# Two passes side by side (one per core: each is one Python process), then the browser tests alone
# (Chromium, the live server and pytest need both cores): the whole run stays well inside CI's 30
# minutes on a slow 2-core machine. Each pass has its own database, temporary var/ and Redis
# database (the worker tests' broker), so neither sees the other's data.
pg=0
if $PY - "$PG_TEST_URL" <<'PYEOF'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1].rsplit("/", 1)[0] + "/postgres", connect_timeout=3).close()
except Exception as exc:
    print(f"PostgreSQL not reachable at {sys.argv[1]}: {exc}")
    sys.exit(1)
PYEOF
then
  pg=1
elif [ "${REQUIRE_POSTGRES:-0}" = 1 ]; then
  echo "REQUIRE_POSTGRES=1 and PostgreSQL is not reachable: failing." >&2
  exit 1
else
  echo "WARNING: the PostgreSQL run will NOT be done (no server at $PG_TEST_URL; set PG_TEST_URL)." >&2
fi

# pytest's exit status 5 is "no tests collected" (arguments that select none of a pass's tests).
ok() { [ "$1" = 0 ] || [ "$1" = 5 ]; }

pg_rc=0
if [ $pg = 1 ]; then
  mkdir -p test-artifacts
  pg_log=test-artifacts/postgres-pass.log
  echo "== tests on PostgreSQL ($PG_TEST_URL), in the background: output in $pg_log, shown below"
  echo "   (the engine and browser tests do not touch the database and run on SQLite only)"
  DATABASE_URL=$PG_TEST_URL \
    STEPLENS_TEST_REDIS_URL=${STEPLENS_TEST_REDIS_URL_PG:-redis://127.0.0.1:6379/13} \
    $PY -m pytest -p no:cacheprovider -m "not browser" --ignore=tests/scoring/prm "$@" \
    >"$pg_log" 2>&1 &
  pg_pid=$!
fi

echo "== tests on SQLite (all but the browser tests)"
sqlite_rc=0
env -u DATABASE_URL $PY -m pytest -p no:cacheprovider -m "not browser" "$@" || sqlite_rc=$?

if [ $pg = 1 ]; then
  wait $pg_pid || pg_rc=$?
  echo "== tests on PostgreSQL: their output"
  cat "$pg_log"
fi

echo "== browser tests (Chromium, SQLite)"
browser_rc=0
env -u DATABASE_URL $PY -m pytest -p no:cacheprovider -m browser "$@" || browser_rc=$?

status=0
ok $sqlite_rc || { echo "FAILED: the SQLite pass (exit $sqlite_rc)" >&2; status=1; }
ok $pg_rc || { echo "FAILED: the PostgreSQL pass (exit $pg_rc)" >&2; status=1; }
ok $browser_rc || { echo "FAILED: the browser tests (exit $browser_rc)" >&2; status=1; }
exit $status
