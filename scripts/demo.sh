#!/usr/bin/env bash
# The offline demo: the real pipeline end to end on this machine alone.
#
#   scripts/demo.sh [BUNDLES]          (default 3 bundles = 30,000 operations)
#
# Builds the tools, generates a deterministic realistic sample, seals it
# into archive A, serves A with plc-serve on a free loopback port, archives
# it through the real pipeline
#
#   plc-export --url URL --repo B | plc-dedup --repo B | plc-chunk | plc-seal --repo B --origin URL
#
# into archive B, verifies B, checks that B's chain equals A's, prints a
# summary, and stops the server it started. Needs only the Rust toolchain
# (and the crates, fetched once by cargo); nothing reaches the network.
# PLC_BIN=DIR uses already built binaries (DIR/plc-*, DIR/examples/synth).
set -euo pipefail
cd "$(dirname "$0")/.."
bundles=${1:-3}
ops=$((bundles * 10000 + 1234)) # a tail that stays unsealed, as in real life

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2fs", b - a }'; }

t=$(now)
if [ -z "${PLC_BIN:-}" ]; then
    # Not --quiet: a first build takes minutes, and cargo's progress shows
    # that it is working.
    echo "demo: building the tools (cargo build --release; a first build takes a few minutes)" >&2
    cargo build --release --locked --bins --examples
    PLC_BIN=$PWD/target/release
fi
t_build=$(took "$t")

work=$(mktemp -d "${TMPDIR:-/tmp}/plc-demo.XXXXXX")
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

t=$(now)
"$PLC_BIN/examples/synth" "$ops" 2026 >"$work/sample.jsonl"
t_gen=$(took "$t")

t=$(now)
"$PLC_BIN/plc-dedup" "$work/sample.jsonl" | "$PLC_BIN/plc-chunk" -q | "$PLC_BIN/plc-seal" -q --repo "$work/A"
t_sealA=$(took "$t")

t=$(now)
"$PLC_BIN/plc-serve" --repo "$work/A" --listen 127.0.0.1:0 2>"$work/serve.log" &
server=$!
url=
for _ in $(seq 100); do
    url=$(sed -n 's/^plc-serve: serving .* on \(http:[^ ]*\)$/\1/p' "$work/serve.log")
    [ -n "$url" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; exit 2; }
    sleep 0.05
done
[ -n "$url" ] || { echo "demo: plc-serve did not start" >&2; exit 2; }
t_serve=$(took "$t")

t=$(now)
"$PLC_BIN/plc-export" --url "$url" --repo "$work/B" --rate 0 --lag 0 \
    | "$PLC_BIN/plc-dedup" --repo "$work/B" \
    | "$PLC_BIN/plc-chunk" -q \
    | "$PLC_BIN/plc-seal" -q --repo "$work/B" --origin "$url"
t_pipe=$(took "$t")

t=$(now)
verdict=$("$PLC_BIN/plc-verify" "$work/B")
t_verify=$(took "$t")

kill "$server"
wait "$server" 2>/dev/null || true
server=

head_a=$("$PLC_BIN/plc-verify" "$work/A" | sed -n 's/.* head //p')
head_b=${verdict##* head }
raw=$(cat "$work"/B/*.jsonl.zst | wc -c)
sealed_ops=$(sed -n 's/^ok: [0-9]* bundles, \([0-9]*\) operations.*/\1/p' <<<"$verdict")
json_bytes=$(head -n "$sealed_ops" "$work/sample.jsonl" | wc -c)

cat <<EOF
plcbundle-tools offline demo
  sample:        $ops generated operations ($(wc -c <"$work/sample.jsonl") bytes of JSONL)
  archive A:     sealed from the sample
  served at:     $url (plc-serve, stopped again)
  archive B:     $verdict
  sizes:         $json_bytes bytes of operations in $raw bytes of bundles
  head hash:     A $head_a
                 B $head_b
  time:          build $t_build, generate $t_gen, seal A $t_sealA, start server $t_serve,
                 export|dedup|chunk|seal into B $t_pipe, verify B $t_verify
EOF
if [ "$head_a" != "$head_b" ]; then
    echo "demo: the two archives differ" >&2
    exit 1
fi
echo "  result:        B is identical to A (same chain head); $((ops - sealed_ops)) newest operations wait for the next bundle"
