#!/usr/bin/env bash
# The main job, end to end: a durable loop on SQLite is killed part-way (SIGKILL),
# resumed, and shows what was skipped; then zart-lint catches the loop bug.
set -euo pipefail
source "$(dirname "$0")/_env.sh" dev
exec python scripts/demo/run_demo.py "$@"
