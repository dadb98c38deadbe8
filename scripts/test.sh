#!/bin/sh
# npm test: installs the real servers the tests need if missing, builds, and runs every
# *.test.js under dist/ with node's own test runner (its summary closes the output).
set -eu
cd "$(dirname "$0")/.."
sh scripts/ensure-system-deps.sh
npm run build --silent
# shellcheck disable=SC2046
exec node --test --test-timeout=180000 "$@" $(find dist -name '*.test.js' | sort)
