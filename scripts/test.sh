#!/usr/bin/env bash
# Install zart with its dev tools, make sure PostgreSQL and Chromium are there, then run
# every check and test.
# Usage: scripts/test.sh [extra pytest args]
set -euo pipefail
source "$(dirname "$0")/_env.sh" dev
bash scripts/ensure_postgres.sh
bash scripts/ensure_browser.sh   # headless Chromium for the web view test
echo "==> ruff"
ruff check zart zart_lint tests examples benchmarks
ruff format --check zart zart_lint tests examples benchmarks
echo "==> mypy --strict"
mypy
echo "==> zart-lint on examples/ (must be clean)"
zart-lint examples
echo "==> pytest"
exec python -m pytest -n 2 --dist loadgroup "$@"
