#!/usr/bin/env bash
# Make sure a headless Chromium is available for tests/ops/test_ops_web.py.
# Installs Debian's `chromium` package with apt when it is missing (needs root).
set -euo pipefail
BROWSER="${ZART_TEST_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$BROWSER" ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_browser: $BROWSER is missing; install Chromium (Debian: apt-get install -y chromium) or set ZART_TEST_CHROMIUM" >&2
    exit 1
fi
echo "==> installing chromium with apt"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
test -x "$BROWSER"
echo "==> $("$BROWSER" --version)"
