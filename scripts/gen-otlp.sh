#!/bin/sh
# Regenerates the TypeScript decoders of the OTLP trace messages that the test OTLP receiver
# (test/support/otlp-receiver.ts) uses, from the official .proto files vendored unchanged under
# test/support/otlp/proto (open-telemetry/opentelemetry-proto v1.11.0, Apache-2.0).
# ts-proto runs as a local buf plugin: no network at generation time.
# Usage: sh scripts/gen-otlp.sh [OUT_DIR]   (default: test/support/otlp/gen)
set -eu
cd "$(dirname "$0")/.."
out="${1:-test/support/otlp/gen}"
rm -rf "$out"
mkdir -p "$out"
PATH="$PWD/node_modules/.bin:$PATH" buf generate test/support/otlp/proto --template '{
  "version": "v2",
  "plugins": [{
    "local": "protoc-gen-ts_proto",
    "out": "'"$out"'",
    "opt": ["esModuleInterop=true", "importSuffix=.js", "forceLong=bigint", "outputServices=false",
            "useOptionals=messages", "env=node", "outputJsonMethods=false", "outputPartialMethods=false"]
  }]
}'
