#!/usr/bin/env bash
# Regenerates the committed Swift code for the protos under Protos/ with
# Debian's protoc and the plugins built from this package's own dependencies
# (swift-protobuf, grpc-swift-protobuf). The build never runs protoc; run this
# after editing a .proto and commit the result. `--check` fails if the
# committed code is stale.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }
swift build --product protoc-gen-swift >/dev/null
swift build --product protoc-gen-grpc-swift-2 >/dev/null
bin=$(swift build --show-bin-path)
check=false
[ "${1:-}" = "--check" ] && check=true
status=0

# generate OUTPUT_DIR PROTO...: one module's generated code from its protos.
generate() {
  local out=$1; shift
  local dest=$out
  if $check; then dest=$(mktemp -d); fi
  mkdir -p "$dest"
  protoc -I Protos \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
    --swift_out="$dest" --swift_opt=Visibility=Public,FileNaming=PathToUnderscores \
    --grpc-swift-2_out="$dest" --grpc-swift-2_opt=Visibility=Public,FileNaming=PathToUnderscores,Server=true,Client=true \
    "$@"
  if $check; then
    if diff -r "$out" "$dest"; then echo "$out is up to date"; else status=1; fi
    rm -rf "$dest"
  fi
}

generate Sources/EtcdAPI/Generated Protos/etcd/mvccpb/kv.proto Protos/etcd/etcdserverpb/rpc.proto
generate Sources/CSIProto/Generated Protos/csi/csi.proto
exit $status
