#!/bin/sh
# npm run gen:proto: regenerates the committed TypeScript of the contract (proto/gen/) from
# proto/**/*.proto with ts-proto, driven by the buf CLI; both come from node_modules, so no
# network is used. With an argument, writes under that directory instead (DIR/gen), which
# the codegen test uses to check that the committed code is up to date.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/proto"
if [ "$#" -gt 0 ]; then
  "$root/node_modules/.bin/buf" generate --output "$1"
else
  "$root/node_modules/.bin/buf" generate
fi
