#!/usr/bin/env bash
# Build, test and package the VS Code extension from a clean install; exits non-zero on any failure.
# The tests start a real Splice server: $SPLICE_BIN (default ../.venv/bin/splice) must exist.
set -euo pipefail
cd "$(dirname "$0")"
npm ci && npm run build && npm test && npm run package
