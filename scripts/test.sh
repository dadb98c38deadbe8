#!/bin/sh
# npm test: installs the real servers the tests need if missing, builds, and runs every
# *.test.js under dist/ with node's own test runner (its summary closes the output).
set -eu
cd "$(dirname "$0")/.."
sh scripts/ensure-system-deps.sh
# A clean build: a deleted or renamed test must not keep running from an old dist/.
rm -rf dist
npm run build --silent
# shellcheck disable=SC2046
exec node --test --test-timeout=180000 "$@" $(find dist -name '*.test.js' | sort)
