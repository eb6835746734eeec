#!/usr/bin/env bash
# Make sure a PostgreSQL server answers at $ZART_TEST_PG (default 127.0.0.1:5432, user postgres).
# Starts the machine's cluster if it is installed but stopped; installs it with apt if missing.
# The tests create their own database and drop it afterwards.
set -euo pipefail
HOST="${ZART_TEST_PG_HOST:-127.0.0.1}"
PORT="${ZART_TEST_PG_PORT:-5432}"
ready() { pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; }
if ! command -v pg_isready >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing PostgreSQL (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    # A cluster we just created for the tests: let user postgres in over loopback
    # without a password, as the test suite expects (this machine's own server does).
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      grep -q "zart-tests" "$hba" || sed -i '1i host all postgres 127.0.0.1/32 trust # zart-tests' "$hba"
    done
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true
    done
  else
    echo "PostgreSQL client tools not found; install PostgreSQL or set ZART_TEST_PG_HOST/PORT" >&2
    exit 1
  fi
fi
if ready; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    echo "==> starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
fi
for _ in $(seq 1 30); do
  if ready; then exit 0; fi
  sleep 1
done
echo "PostgreSQL is not reachable at $HOST:$PORT; the test suite needs it (user postgres, trust auth)" >&2
exit 1
