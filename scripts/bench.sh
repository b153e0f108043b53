#!/usr/bin/env bash
# Benchmark of the local work, against public floor tools on the same bytes.
#
#   scripts/bench.sh [BUNDLES] [RUNS]        (defaults: 20 bundles, 5 runs)
#
# Generates a deterministic input of BUNDLES*10000 synthetic operations
# (cargo run --example synth), then measures each tool RUNS times and prints
# a markdown table of the median wall time, CPU time (user+sys) and peak RSS
# next to the floors measured in the same run (each ratio row alternates
# the tool and its floor run by run and takes the median of the rounds'
# ratios; see `pair`):
#   - sealing floor:      zstd -3 -T1 -c  +  openssl dgst -sha256, one after the other
#   - verification floor: zstd -dc of all bundle files + sha256 of the
#                         uncompressed and of the compressed bytes
# and the ratios the targets are stated in. Memory is measured per filter
# at BUNDLES and 2*BUNDLES. Absolute times drift on shared machines; the
# ratios, measured side by side, are what to compare.
set -euo pipefail
cd "$(dirname "$0")/.."
bundles=${1:-20}
runs=${2:-5}
ops=$((bundles * 10000))

cargo build --quiet --release --locked --bins --examples
B=$PWD/target/release
W=$(mktemp -d "${TMPDIR:-/tmp}/plc-bench.XXXXXX")
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$W"' EXIT

"$B/examples/synth" "$ops" 42 >"$W/ops.jsonl"
"$B/examples/synth" $((ops * 2)) 42 >"$W/ops2.jsonl"

# once NAME CMD...: runs CMD once through examples/timed.rs and appends
# "wall cpu rss_kb" to $W/NAME.all: wall time from the monotonic clock
# around the command, CPU time (user + sys of it and everything it waited
# for) and peak RSS from wait4's rusage, the numbers GNU time gives, but
# CPU to the microsecond rather than the hundredth (a 1-bundle plc-index
# run takes about 15 ms of CPU).
once() {
    local name=$1
    shift
    "$B/examples/timed" "$W/t" "$W/err" "$@" || {
        echo "bench: $name failed:" >&2
        cat "$W/err" >&2
        exit 2
    }
    cat "$W/t" >>"$W/$name.all"
}
# summarize NAME: the medians of NAME's runs, in $W/NAME.res.
summarize() {
    python3 - "$W/$1.all" >"$W/$1.res" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
print(" ".join(str(statistics.median(c)) for c in zip(*rows)))
PY
}
# measure NAME CMD...: runs CMD $runs times (after $PREP each time).
measure() {
    local name=$1
    shift
    : >"$W/$name.all"
    for _ in $(seq "$runs"); do
        [ -n "${PREP:-}" ] && eval "$PREP"
        once "$name" "$@"
    done
    summarize "$name"
}
# pair BASE NAME: runs the arrays BASE_CMD and CMD alternately, $runs
# times each (after $BASE_PREP and $PREP), and records each round's
# wall-time ratio NAME/BASE in $W/NAME.pairs. This VM's speed drifts by
# tens of percent within minutes (steal time), so a ratio of two medians
# measured a minute apart moves with the drift; runs side by side see the
# same moment. Ratio rows print the median of the rounds' ratios.
pair() {
    local base=$1 name=$2
    : >"$W/$base.all"
    : >"$W/$name.all"
    : >"$W/$name.pairs"
    for _ in $(seq "$runs"); do
        [ -n "${BASE_PREP:-}" ] && eval "$BASE_PREP"
        once "$base" "${BASE_CMD[@]}"
        [ -n "${PREP:-}" ] && eval "$PREP"
        once "$name" "${CMD[@]}"
        paste -d' ' <(tail -n 1 "$W/$name.all") <(tail -n 1 "$W/$base.all") |
            awk '{ print $1 / $4 }' >>"$W/$name.pairs"
    done
    summarize "$base"
    summarize "$name"
}
col() { cut -d' ' -f"$2" "$W/$1.res"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
ratio3() { python3 -c "print(f'{$1 / $2:.3f}')"; }
# pratio NAME: the median of the round-by-round ratios of `pair`.
pratio() {
    python3 -c "import statistics, sys; print(f'{statistics.median(float(l) for l in open(sys.argv[1])):.2f}')" "$W/$1.pairs"
}

# serve DIR [BINARY]: starts plc-serve (or BINARY) on DIR, sets $url.
serve() {
    "${2:-$B/plc-serve}" --repo "$1" --listen 127.0.0.1:0 2>"$W/serve.log" &
    server=$!
    url=
    for _ in $(seq 100); do
        url=$(sed -n 's/^plc-serve: serving .* on \(http:[^ ]*\)$/\1/p' "$W/serve.log")
        [ -n "$url" ] && return 0
        sleep 0.05
    done
    echo "bench: plc-serve did not start" >&2
    exit 2
}


# Floors.
measure zstd3 zstd -3 -T1 -q -c "$W/ops.jsonl"
measure sha openssl dgst -sha256 "$W/ops.jsonl"
SEALFLOOR=(bash -c "zstd -3 -T1 -q -c '$W/ops.jsonl' >/dev/null && openssl dgst -sha256 '$W/ops.jsonl'")

# Sealing.
BASE_CMD=("${SEALFLOOR[@]}")
CMD=(bash -c "'$B/plc-dedup' '$W/ops.jsonl' | '$B/plc-chunk' -q | '$B/plc-seal' -q --repo '$W/R'")
PREP="rm -rf '$W/R'" pair sealfloor seal
zstd -dc -q "$W"/R/*.jsonl.zst >"$W/sealed.jsonl"
# Written back now rather than by the kernel's flusher during the runs
# below (136 MB of dirty pages took CPU from two-thread runs more than
# from the one-process floor).
sync
BASE_CMD=(bash -c "zstd -dc -q '$W'/R/*.jsonl.zst >/dev/null && openssl dgst -sha256 '$W/sealed.jsonl' && cat '$W'/R/*.jsonl.zst | openssl dgst -sha256")
CMD=("$B/plc-verify" "$W/R")
runs=$((runs * 3)) pair verifyfloor verify

# Sealing onto a long archive: the same 19 bundles (2 to BUNDLES of the
# sealed content) appended to a 1-bundle archive and to one whose index
# already holds 7,000 bundles. The long index is fabricated (6,999 entries
# with a consistent chain but no files, then bundle 1's file and entry as
# bundle 7,000): plc-seal reads only the index and the last bundle.
long_index() { # SRC_INDEX N OUT_DIR
    python3 - "$@" <<'PY'
import hashlib, json, os, shutil, sys
src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
idx = json.load(open(os.path.join(src, "plc_bundles.json")))
first = idx["bundles"][0]
bundles, parent = [], ""
for i in range(1, n + 1):
    e = dict(first)
    if i < n:
        e["content_hash"] = hashlib.sha256(b"fabricated %d" % i).hexdigest()
        e["compressed_hash"] = hashlib.sha256(b"file %d" % i).hexdigest()
    pre = "plcbundle:genesis:" if i == 1 else parent + ":"
    e["hash"] = hashlib.sha256((pre + e["content_hash"]).encode()).hexdigest()
    e["bundle_number"], e["parent"] = i, parent
    e["cursor"] = "" if i == 1 else first["end_time"]
    if i > 1:
        e["start_time"] = first["end_time"]
    bundles.append(e)
    parent = e["hash"]
os.makedirs(out)
shutil.copy(os.path.join(src, "000001.jsonl.zst"), os.path.join(out, "%06d.jsonl.zst" % n))
idx.update(last_bundle=n, bundles=bundles,
           total_size_bytes=n * first["compressed_size"],
           total_uncompressed_size_bytes=n * first["uncompressed_size"])
open(os.path.join(out, "plc_bundles.json"), "w").write(json.dumps(idx, indent=2) + "\n")
PY
}
tail -n +10001 "$W/sealed.jsonl" >"$W/rest.jsonl"
BASE_CMD=("$B/plc-seal" -q --repo "$W/L1" "$W/rest.jsonl")
CMD=("$B/plc-seal" -q --repo "$W/L7" "$W/rest.jsonl")
BASE_PREP="rm -rf '$W/L1' && long_index '$W/R' 1 '$W/L1'" PREP="rm -rf '$W/L7' && long_index '$W/R' 7000 '$W/L7'" pair sealshort seallong
"$B/plc-verify" -q --quick "$W/L1" >/dev/null || { echo "bench: the short archive does not verify" >&2; exit 2; }

# End to end from a local directory on 127.0.0.1: plc-serve over the
# sealed archive answers /export like the directory; the whole pipeline
# archives it again with --rate 0 (the server shares the two cores; its own
# CPU is not in the cpu column).
serve "$W/R"
BASE_CMD=("${SEALFLOOR[@]}")
CMD=(bash -c "'$B/plc-export' -q --url '$url' --repo '$W/E' --rate 0 --lag 0 | '$B/plc-dedup' --repo '$W/E' | '$B/plc-chunk' -q | '$B/plc-seal' -q --repo '$W/E' --origin '$url'")
PREP="rm -rf '$W/E'" pair sealfloor-e2e e2e
kill "$server"
server=
cmp -s "$W/R/000001.jsonl.zst" "$W/E/000001.jsonl.zst" || { echo "bench: the end-to-end archive differs" >&2; exit 2; }

# Clone from a local plc-serve through the whole pipeline: every bundle is
# downloaded, checked against the mirror's index (plc-verify's checks) and
# sealed again. Verifying the download should cost almost nothing next to
# sealing.
serve "$W/R"
origin=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["origin"])' "$W/R/plc_bundles.json")
BASE_CMD=("${SEALFLOOR[@]}")
CMD=(bash -c "'$B/plc-clone' -q --url '$url' --repo '$W/K' | '$B/plc-dedup' --repo '$W/K' | '$B/plc-chunk' -q | '$B/plc-seal' -q --repo '$W/K' --origin '$origin'")
PREP="rm -rf '$W/K'" pair sealfloor-clone clone
kill "$server"
server=
cmp -s "$W/R/plc_bundles.json" "$W/K/plc_bundles.json" || python3 - "$W/R/plc_bundles.json" "$W/K/plc_bundles.json" <<'PY' || { echo "bench: the cloned archive's chain differs" >&2; exit 2; }
import json, sys
a, b = (json.load(open(p))["bundles"] for p in sys.argv[1:])
sys.exit([(x["content_hash"], x["hash"]) for x in a] != [(x["content_hash"], x["hash"]) for x in b])
PY
# plc-serve under load: 32 keep-alive clients (examples/load.rs) for 3 s,
# paging through /export or fetching /data/N; requests per second, p50 and
# p99 latency, and the server's peak RSS (VmHWM). With
# PLC_SERVE_BEFORE=/path/to/older/plc-serve the same rows are measured for
# that binary too, in the same run (the "before" of a change).
serveload() { # NAME BINARY MODE
    serve "$W/R" "$2"
    "$B/examples/load" "${url#http://}" "$3" 32 3 "$bundles" >"$W/$1.load"
    echo "$(cat "$W/$1.load") rss_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$server/status")" >"$W/$1.load"
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=
}
loadrows=()
for mode in export data; do
    if [ -n "${PLC_SERVE_BEFORE:-}" ]; then
        serveload "before-$mode" "$PLC_SERVE_BEFORE" "$mode"
        loadrows+=("before-$mode:$mode, before ($(basename "$PLC_SERVE_BEFORE"))")
    fi
    serveload "after-$mode" "$B/plc-serve" "$mode"
    loadrows+=("after-$mode:$mode")
done

# Memory of each filter alone, at two sizes.
for f in 1 2; do
    in=$W/ops.jsonl
    [ $f = 2 ] && in=$W/ops2.jsonl
    measure "dedup$f" "$B/plc-dedup" "$in"
    measure "chunk$f" "$B/plc-chunk" -q "$in"
    PREP="rm -rf '$W/M$f'" measure "sealonly$f" "$B/plc-seal" -q --repo "$W/M$f" "$in"
    measure "verify$f" "$B/plc-verify" "$W/M$f"
    serve "$W/M$f"
    measure "export$f" "$B/plc-export" -q --url "$url" --since 2000-01-01T00:00:00Z --rate 0 --lag 0
    kill "$server"
    server=
done

# Audit: a 20-bundle archive of validly signed operations (examples/signed),
# both cores, against openssl's single-core P-256 verify rate measured now,
# by the wall clock (-elapsed) as the audit is; openssl's default CPU-time
# rate is printed beside it.
"$B/examples/signed" "$ops" 42 >"$W/signed.jsonl"
"$B/plc-seal" -q --repo "$W/S" "$W/signed.jsonl"
measure audit "$B/plc-audit" --repo "$W/S"
ossl_wall=$(openssl speed -elapsed -seconds 1 ecdsap256 2>/dev/null | awk '/nistp256/ {print $NF}')
ossl_cpu=$(openssl speed -seconds 1 ecdsap256 2>/dev/null | awk '/nistp256/ {print $NF}')
audit_rate=$(python3 -c "print(f'{$ops / $(col audit 1):.0f}')")

archive_bytes=$(cat "$W"/R/*.jsonl.zst | wc -c)
zstd_bytes=$(zstd -3 -T1 -q -c "$W/sealed.jsonl" | wc -c)
# The size again on operations that update a recent DID and repeat its keys
# (45% of them), which compress more like the real directory's.
"$B/examples/synth" "$ops" 42 45 >"$W/carry.jsonl"
"$B/plc-seal" -q --repo "$W/C" "$W/carry.jsonl"
carry_archive_bytes=$(cat "$W"/C/*.jsonl.zst | wc -c)
carry_zstd_bytes=$(zstd -3 -T1 -q -c "$W/carry.jsonl" | wc -c)

# plc-verify on archives of other operation mixes and in the other
# implementations' layout (issue 11, "verification speed on data it has
# never seen"): the repeating input C, the signed operations S, and all
# three rewritten the way the Go and Rust implementations write bundles
# (examples/golayout: a metadata frame, then frames of 100 operations at
# level 1; the same content and chain). Each against its own floor;
# --quick on a Go-layout archive against --quick on ours of the same
# operations.
verifyon() { # NAME DIR
    zstd -dc -q "$2"/*.jsonl.zst >"$W/$1.content"
    sync
    BASE_CMD=(bash -c "zstd -dc -q '$2'/*.jsonl.zst >/dev/null && openssl dgst -sha256 '$W/$1.content' && cat '$2'/*.jsonl.zst | openssl dgst -sha256")
    CMD=("$B/plc-verify" "$2")
    # The verification rows are the closest to their target: three times
    # the rounds, for a median that moves less from run to run.
    runs=$((runs * 3)) pair "vfloor$1" "v$1"
    rm -f "$W/$1.content"
}
for a in R C S; do
    "$B/examples/golayout" "$W/$a" "$W/${a}go"
    "$B/plc-verify" -q "$W/${a}go" >/dev/null || { echo "bench: the Go-layout copy of $a does not verify" >&2; exit 2; }
    verifyon "$a" "$W/$a"
    verifyon "${a}go" "$W/${a}go"
    # --quick runs take 20 to 30 ms, where this VM's jitter is a tenth:
    # four times the rounds.
    BASE_CMD=("$B/plc-verify" --quick "$W/$a")
    CMD=("$B/plc-verify" --quick "$W/${a}go")
    runs=$((runs * 4)) pair "q$a" "q${a}go"
done

# The DID index and lookups (issue 13). plc-index from scratch on the
# sealed archive R, against plc-verify on the same files; then one more
# bundle on an indexed archive of BUNDLES bundles; then the audit logs of
# 1,000 random DIDs of R in one plc-did process, against zstd -dc of 100
# bundles (R's files decompressed as many times as it takes).
BASE_CMD=("$B/plc-verify" "$W/R")
CMD=("$B/plc-index" -q --repo "$W/R")
PREP="rm -rf '$W/R/did-index'" pair verify-index didindex
head -n "$ops" "$W/ops2.jsonl" | "$B/plc-seal" -q --repo "$W/P"
"$B/plc-index" -q --repo "$W/P"
cp -a "$W/P/did-index" "$W/P.idx"
sed -n "$((ops + 1)),$((ops + 10000))p" "$W/ops2.jsonl" | "$B/plc-seal" -q --repo "$W/P"
PREP="rm -rf '$W/P/did-index' && cp -a '$W/P.idx' '$W/P/did-index'" measure didindex1 "$B/plc-index" -q --repo "$W/P"
# What bounds the 1-bundle run's wall time: decompressing that bundle on
# one core, against decompressing all of R's on every core, as plc-index
# does from scratch (zstd -dc, one process per core).
new_bundle=$(printf '%s/P/%06d.jsonl.zst' "$W" $((bundles + 1)))
BASE_CMD=(bash -c "ls '$W'/R/*.jsonl.zst | xargs -P $(nproc) -n $(( (bundles + $(nproc) - 1) / $(nproc) )) zstd -dc -q >/dev/null")
CMD=(zstd -dc -q "$new_bundle")
pair zstdall zstd1
python3 - "$W/sealed.jsonl" >"$W/dids.txt" <<'PY'
import json, random, sys
dids = sorted({json.loads(l)["did"] for l in open(sys.argv[1], encoding="utf-8")})
random.seed(13)
print("\n".join(random.sample(dids, 1000)))
PY
# Exit 1 only says some DID had no answer (a DID whose every operation is
# nullified, say); every line is still written, which is what is timed.
reps=$(( (100 + bundles - 1) / bundles ))
BASE_CMD=(bash -c "for i in \$(seq $reps); do zstd -dc -q '$W'/R/*.jsonl.zst; done >/dev/null")
CMD=(bash -c "'$B/plc-did' --repo '$W/R' --audit <'$W/dids.txt'; [ \$? -le 1 ]")
pair zstd100 didlookup
did_index_bytes=$(cat "$W"/R/did-index/* | wc -c)
# The same DIDs' audit logs through plc-serve: 16 keep-alive clients for
# 3 s, each asking for random DIDs of the 1,000; with the default cache of
# decompressed frames (it holds the whole archive here) and with none
# (every request decompresses the bundles its DID is in).
for cache in 256 0; do
    "$B/plc-serve" --repo "$W/R" --listen 127.0.0.1:0 --quiet --did-cache "$cache" 2>"$W/serve.log" &
    server=$!
    url=
    for _ in $(seq 100); do
        url=$(sed -n 's/^plc-serve: serving .* on \(http:[^ ]*\)$/\1/p' "$W/serve.log")
        [ -n "$url" ] && break
        sleep 0.05
    done
    [ -n "$url" ] || { echo "bench: plc-serve did not start" >&2; exit 2; }
    "$B/examples/load" "${url#http://}" did 16 3 "$W/dids.txt" >"$W/didserve$cache.load"
    echo "$(cat "$W/didserve$cache.load") rss_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$server/status")" >"$W/didserve$cache.load"
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=
done

echo
echo "Input: $bundles bundles ($ops operations, $(wc -c <"$W/ops.jsonl") bytes), median of $runs runs, $(nproc) cores."
echo
echo "| measurement | wall s | cpu s | peak RSS MB | ratio | target |"
echo "|---|---|---|---|---|---|"
row() { # name label ratio target
    printf '| %s | %s | %s | %.1f | %s | %s |\n' "$2" "$(col "$1" 1)" "$(col "$1" 2)" "$(echo "$(col "$1" 3) / 1024" | bc -l)" "$3" "$4"
}
row zstd3 "floor: zstd -3 -T1 -c" "" ""
row sha "floor: openssl dgst -sha256" "" ""
row sealfloor "sealing floor (zstd -3 then sha256)" "1.00" ""
row seal "plc-dedup \| plc-chunk \| plc-seal" "$(pratio seal)" "≤ 0.8"
row verifyfloor "verification floor (zstd -dc, sha256 x2)" "1.00" ""
row verify "plc-verify (all checks; $((runs * 3)) rounds)" "$(pratio verify)" "≤ 0.5"
row e2e "end to end: plc-serve on 127.0.0.1 -> plc-export --rate 0 \| plc-dedup \| plc-chunk \| plc-seal" "$(pratio e2e)" "≤ 1.2 (of the sealing floor)"
row sealshort "plc-seal of bundles 2-$bundles onto a 1-bundle archive" "1.00" ""
row seallong "the same onto an archive whose index holds 7,000 bundles" "$(pratio seallong)" "≤ 1.15 (of the row above)"
row clone "clone: plc-serve on 127.0.0.1 -> plc-clone \| plc-dedup \| plc-chunk \| plc-seal" "$(pratio clone)" "≤ 1.2 (of the sealing floor)"
for f in 1 2; do
    n=$((bundles * f))
    row "export$f" "plc-export alone (from plc-serve), $n bundles" "" "≤ 64 MB"
    row "dedup$f" "plc-dedup alone, $n bundles" "" "≤ 64 MB"
    row "chunk$f" "plc-chunk alone, $n bundles" "" "≤ 64 MB"
    row "sealonly$f" "plc-seal alone, $n bundles" "" "≤ 64 MB"
    row "verify$f" "plc-verify, $n bundles" "" "≤ 64 MB"
done
row audit "plc-audit --repo, $bundles bundles of signed operations: $audit_rate ops/s (openssl ecdsap256 verify, 1 core: $ossl_wall/s wall, $ossl_cpu/s cpu)" "$(ratio "$audit_rate" "$ossl_wall")" "≥ 1.0 (ops/s over openssl's verify/s)"
echo "| archive size / zstd -3 of the same content | $archive_bytes / $zstd_bytes bytes | | | $(ratio3 "$archive_bytes" "$zstd_bytes") | ≤ 1.0 |"
echo "| the same, with 45% of operations repeating a recent DID's keys | $carry_archive_bytes / $carry_zstd_bytes bytes | | | $(ratio3 "$carry_archive_bytes" "$carry_zstd_bytes") | ≤ 1.0 |"
for a in R C S; do
    label=$(case $a in R) echo "plain input";; C) echo "repeating input (45%)";; S) echo "signed operations";; esac)
    row "vfloor$a" "verification floor, $label" "1.00" ""
    row "v$a" "plc-verify, $label ($((runs * 3)) rounds)" "$(pratio "v$a")" "≤ 0.5"
    row "vfloor${a}go" "verification floor, $label, Go/Rust layout" "1.00" ""
    row "v${a}go" "plc-verify, $label, Go/Rust layout ($((runs * 3)) rounds)" "$(pratio "v${a}go")" "≤ 0.5"
    row "q$a" "plc-verify --quick, $label" "1.00" ""
    row "q${a}go" "plc-verify --quick, $label, Go/Rust layout (ratio to ours; $((runs * 4)) rounds)" "$(pratio "q${a}go")" "≤ 1.2"
done
row zstd100 "floor: zstd -dc of $((reps * bundles)) bundles" "1.00" ""
row didlookup "plc-did --audit, 1,000 random DIDs of $bundles bundles, one process" "$(pratio didlookup)" "≤ 1.0, ≤ 64 MB"
row didindex "plc-index, $bundles bundles from scratch (ratio to plc-verify)" "$(pratio didindex)" "≤ 1.0"
row didindex1 "plc-index, 1 bundle added to $bundles indexed (CPU time over all $bundles; wall time: $(ratio "$(col didindex1 1)" "$(col didindex 1)"))" "$(ratio "$(col didindex1 2)" "$(col didindex 2)")" "≤ 0.1"
row zstdall "floor: zstd -dc of the $bundles bundles, one process per core" "1.00" ""
row zstd1 "floor: zstd -dc of the 1 new bundle (wall time over the row above)" "$(pratio zstd1)" ""
echo "| DID index size / archive size | $did_index_bytes / $archive_bytes bytes | | | $(ratio3 "$did_index_bytes" "$archive_bytes") | ≤ 0.15 |"
echo
echo "plc-serve answering /{did}/log/audit for random DIDs of the 1,000, 16 keep-alive clients for 3 s:"
echo
echo "| frames cached | requests | req/s | p50 ms | p99 ms (target < 20) | errors | plc-serve peak RSS MB |"
echo "|---|---|---|---|---|---|---|"
for cache in 256 0; do
    python3 - "$W/didserve$cache.load" "$cache" <<'PY'
import sys
f = dict(kv.split("=") for kv in open(sys.argv[1]).read().split())
print(f"| {sys.argv[2]} MiB | {f['requests']} | {f['rps']} | {f['p50_ms']} | {f['p99_ms']} | {f['errors']} | {int(f['rss_kb']) / 1024:.1f} |")
PY
done
echo
echo "plc-serve on 127.0.0.1 under 32 keep-alive clients for 3 s (examples/load.rs; /export pages of 1000, /data/N files of the $bundles bundles):"
echo
echo "| requests | req/s | p50 ms | p99 ms | errors | plc-serve peak RSS MB |"
echo "|---|---|---|---|---|---|"
for r in "${loadrows[@]}"; do
    name=${r%%:*}
    label=${r#*:}
    python3 - "$W/$name.load" "$label" <<'PY'
import sys
f = dict(kv.split("=") for kv in open(sys.argv[1]).read().split())
label = {"export": "/export paging", "data": "/data/N"}
mode, _, rest = sys.argv[2].partition(",")
print(f"| {label[mode]}{',' + rest if rest else ''} | {f['rps']} | {f['p50_ms']} | {f['p99_ms']} | {f['errors']} | {int(f['rss_kb']) / 1024:.1f} |")
PY
done
