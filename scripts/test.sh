#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
DELTAFS_EXTRA_PACKAGES="${DELTAFS_EXTRA_PACKAGES:-} rsync sqlite3 git openssl procps" bash scripts/ensure-deps.sh
exec node scripts/run-tests.mjs "$@"
