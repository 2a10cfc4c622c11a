#!/usr/bin/env bash
# The one script that regenerates proto/signet/v1/*_pb2.py, *_pb2_grpc.py and their typed .pyi stubs
# (mypy-protobuf: protoc-gen-mypy for messages, protoc-gen-mypy_grpc for stubs and servicers).
# --check: regenerate into a temporary directory and fail when the committed files differ.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VPY:-.venv/bin/python}
BIN=$(dirname "$PY")
out=proto
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
$PY -m grpc_tools.protoc -Iproto \
  --plugin=protoc-gen-mypy="$BIN/protoc-gen-mypy" --plugin=protoc-gen-mypy_grpc="$BIN/protoc-gen-mypy_grpc" \
  --python_out="$out" --mypy_out="$out" --grpc_python_out="$out" --mypy_grpc_out="$out" \
  proto/signet/v1/*.proto
if [ "${1:-}" = "--check" ]; then
  stale=0
  for f in "$out"/signet/v1/*.py "$out"/signet/v1/*.pyi; do
    rel=${f#"$out"/}
    if ! cmp -s "$f" "proto/$rel"; then echo "stale generated file: proto/$rel (run: make proto)"; stale=1; fi
  done
  for f in proto/signet/v1/*_pb2*.py proto/signet/v1/*_pb2*.pyi; do
    [ -e "$f" ] || continue
    rel=${f#proto/}
    [ -e "$out/$rel" ] || { echo "generated file without .proto: $f"; stale=1; }
  done
  [ $stale = 0 ] && echo "generated protobuf code is up to date"
  exit $stale
fi
echo "regenerated protobuf code under proto/signet/v1"
