#!/usr/bin/env bash
# The whole test suite: everything on SQLite, then the database-facing tests again on PostgreSQL.
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

echo "== tests on SQLite (all, browser tests included)"
env -u DATABASE_URL $PY -m pytest -p no:cacheprovider "$@"

if $PY - "$PG_TEST_URL" <<'PYEOF'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1].rsplit("/", 1)[0] + "/postgres", connect_timeout=3).close()
except Exception as exc:
    print(f"PostgreSQL not reachable at {sys.argv[1]}: {exc}")
    sys.exit(1)
PYEOF
then
  echo "== tests on PostgreSQL ($PG_TEST_URL; the engine and browser tests do not touch the database and ran above)"
  DATABASE_URL=$PG_TEST_URL $PY -m pytest -p no:cacheprovider -m "not browser" --ignore=tests/scoring/prm "$@"
elif [ "${REQUIRE_POSTGRES:-0}" = 1 ]; then
  echo "REQUIRE_POSTGRES=1 and PostgreSQL is not reachable: failing." >&2
  exit 1
else
  echo "WARNING: the PostgreSQL run was NOT done (no server at $PG_TEST_URL; set PG_TEST_URL)." >&2
fi
