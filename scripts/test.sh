#!/usr/bin/env bash
# Runs the whole suite: unit + integration tests on real Postgres and Redis, then the browser
# tests in headless Chromium inside a loopback-only network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

PG_URL="${FOREMAN_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS="${FOREMAN_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
run_id="$$_$(date +%s)"

# Postgres and Redis are required: integration tests run on them for real, never skipped.
if ! $PY - "$PG_URL" "$REDIS" <<'PYEOF'
import sys, psycopg, redis
try:
    psycopg.connect(sys.argv[1].replace("postgres://", "postgresql://"), connect_timeout=3).close()
except Exception as e:
    sys.exit(f"Postgres is not reachable at {sys.argv[1]}: {e}")
try:
    redis.Redis.from_url(sys.argv[2], socket_timeout=3).ping()
except Exception as e:
    sys.exit(f"Redis is not reachable at {sys.argv[2]}: {e}")
PYEOF
then
  echo "FAIL: the integration tests need Postgres and Redis (see README)." >&2
  exit 1
fi

# Paths given on the command line narrow the run (e.g. `bash scripts/test.sh tests/sim -x`); an
# argument counts as a path only if it exists (so `-p no:cacheprovider` stays an option's value).
targets=(tests --ignore=tests/browser)
for arg in "$@"; do
  case "$arg" in -*) ;; *) if [ -e "${arg%%::*}" ]; then targets=(); break; fi ;; esac
done

# Lint and types first (pyproject.toml): a finding fails the run. A narrowed run (paths given) skips
# them, as does FOREMAN_SKIP_LINT=1.
if [ "${#targets[@]}" -gt 0 ] && [ "${FOREMAN_SKIP_LINT:-0}" != "1" ]; then
  echo "ruff check"
  .venv/bin/ruff check . || { echo "FAIL: ruff found the problems above (\`.venv/bin/ruff check --fix .\` fixes some)" >&2; exit 1; }
  echo "mypy"
  .venv/bin/mypy || { echo "FAIL: mypy found the type errors above" >&2; exit 1; }
fi

# LeRobot's own environment (the LeRobot driver and loader tests), built once and cached: here, not
# inside a test, so its first build never counts against a test's timeout.
echo "LeRobot environment: $(bash scripts/lerobot_env.sh)"

status=0
DATABASE_URL="$PG_URL" REDIS_URL="$REDIS" \
FOREMAN_TEST_DB_NAME="test_foreman_${run_id}" FOREMAN_CHANNEL_PREFIX="foreman_test_${run_id}" \
  $PY -m pytest "${targets[@]}" "$@" || status=$?

# Browser tests: Debian's chromium, loopback-only namespace, embedded defaults (SQLite, in-memory layer).
if [ "${FOREMAN_SKIP_BROWSER:-0}" = "1" ]; then
  echo "SKIPPED browser tests (FOREMAN_SKIP_BROWSER=1)"
elif [ -d tests/browser ] && ls tests/browser/test_*.py >/dev/null 2>&1; then
  chromium_bin="$(command -v chromium || true)"
  if [ -z "$chromium_bin" ]; then
    if [ "${CI:-}" = "true" ]; then
      echo "FAIL: CI must run the browser tests but chromium is missing" >&2
      exit 1
    fi
    echo "SKIPPED browser tests: Debian's chromium is not installed (apt-get install chromium)"
  else
    browser_status=0
    if [ "$(id -u)" = "0" ] && command -v unshare >/dev/null && command -v ip >/dev/null; then
      env -u DATABASE_URL -u REDIS_URL FOREMAN_CHROMIUM="$chromium_bin" \
        unshare -n -- sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/browser' || browser_status=$?
    elif [ "${CI:-}" = "true" ]; then
      echo "FAIL: CI needs root, unshare and ip to run the browser tests in a loopback-only namespace" >&2
      exit 1
    else
      echo "SKIPPED browser tests: need root + unshare + ip for a loopback-only network namespace"
    fi
    [ "$browser_status" = "0" ] || status=$browser_status
  fi
fi
exit $status
