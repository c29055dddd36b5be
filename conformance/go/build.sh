#!/usr/bin/env bash
# Builds the Go conformance client in GOPATH mode from Debian's Go packages (no module
# downloads): protoc-gen-go from /usr/share/gocode, the Go code of the two .proto files, the
# sources of this directory copied into the GOPATH, `go vet`, `go test`, then the binary.
#
#   conformance/go/build.sh [WORK_DIR]      (default: target/conformance-go)
#
# Leaves WORK_DIR/bin/contrast-conformance. Needs the packages .ci/conformance-go installs:
# golang-go golang-google-grpc-dev golang-google-protobuf-dev protobuf-compiler
# protoc-gen-go-grpc libprotobuf-dev.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${1:-$repo/target/conformance-go}
mkdir -p "$work"
work=$(cd "$work" && pwd)

gopath=$work/gopath
export GO111MODULE=off
export GOPATH=$gopath:/usr/share/gocode
export GOCACHE=$work/cache
export GOFLAGS=
export PATH=$work/bin:$PATH
pkg=$gopath/src/contrast-rs/conformance
mkdir -p "$work/bin" "$gopath/src"

echo "--- go: $(go version)"
echo "--- protoc: $(protoc --version); protoc-gen-go-grpc: $(dpkg-query -W -f '${Version}' protoc-gen-go-grpc 2>/dev/null || echo '?')"
echo "--- grpc-go: $(sed -n 's/^const Version = "\(.*\)"/\1/p' /usr/share/gocode/src/google.golang.org/grpc/version.go)"

echo "--- building protoc-gen-go from /usr/share/gocode"
go build -o "$work/bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go

echo "--- generating Go code from contrast-grpc/proto/userapi.proto and contrast-attest/proto/sevsnp.proto"
rm -rf "$pkg"
mkdir -p "$pkg"
protoc \
    -I "$repo/contrast-grpc/proto" -I "$repo/contrast-attest/proto" -I /usr/include \
    --go_out="$gopath/src" --go_opt=paths=import \
    --go-grpc_out="$gopath/src" --go-grpc_opt=paths=import \
    "$repo/contrast-grpc/proto/userapi.proto" "$repo/contrast-attest/proto/sevsnp.proto"
ls "$pkg/userapi" "$pkg/sevsnp"

echo "--- copying the client's sources into the GOPATH"
for dir in "$here"/*/; do
    cp -r "$dir" "$pkg/"
done
packages=$(cd "$gopath/src" && find contrast-rs/conformance -name '*.go' -printf '%h\n' | sort -u)

echo "--- gofmt"
unformatted=$(gofmt -l "$here")
if [[ -n $unformatted ]]; then
    echo "not gofmt-formatted: $unformatted" >&2
    exit 1
fi

echo "--- go vet"
# shellcheck disable=SC2086
go vet $packages

echo "--- go test"
# shellcheck disable=SC2086
go test -count=1 $packages

echo "--- go build"
go build -o "$work/bin/contrast-conformance" contrast-rs/conformance/cmd/contrast-conformance
echo "built $work/bin/contrast-conformance"
