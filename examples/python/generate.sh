#!/usr/bin/env bash
# Generates the Python protobuf and gRPC modules of the Sigil API from the
# project's .proto files into examples/python/gen (git-ignored).
# Usage: bash examples/python/generate.sh   (with grpcio-tools installed)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
rm -rf "$here/gen"
mkdir -p "$here/gen"
cd "$here"
"$python" -m grpc_tools.protoc -I ../../proto \
  --python_out=gen --grpc_python_out=gen \
  sigil/v1/common.proto sigil/v1/policy.proto sigil/v1/node.proto sigil/v1/coordinator.proto
echo "generated $(find gen -name '*.py' | wc -l) modules in $here/gen"
