#!/usr/bin/env bash
# One incremental archiving pass:
#
#   scripts/archive.sh DIR [URL]
#
# builds the tools (release) and runs
#
#   plc-export --url URL --repo DIR | plc-dedup --repo DIR | plc-chunk | plc-seal --repo DIR --origin URL
#
# Safe to run again at any time (from cron, after a crash): it continues
# where DIR's last bundle ends. Extra plc-export flags can be passed in
# PLC_EXPORT_FLAGS (for example "--rate 0 --lag 5m"). Exit status: 0 when
# every stage succeeded, otherwise the first failing stage's status, with a
# line on stderr naming that stage.
set -uo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 DIR [URL]" >&2
    exit 2
fi
repo=$1
url=${2:-https://plc.directory}
here=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "${PLC_BIN:-}" ]; then
    (cd "$here" && cargo build --quiet --release --locked --bins) || {
        echo "archive.sh: building the tools failed" >&2
        exit 2
    }
    PLC_BIN=$here/target/release
fi

# shellcheck disable=SC2086 # PLC_EXPORT_FLAGS is split on purpose
"$PLC_BIN/plc-export" --url "$url" --repo "$repo" ${PLC_EXPORT_FLAGS:-} \
    | "$PLC_BIN/plc-dedup" --repo "$repo" \
    | "$PLC_BIN/plc-chunk" \
    | "$PLC_BIN/plc-seal" --repo "$repo" --origin "$url"
status=("${PIPESTATUS[@]}")

stages=(plc-export plc-dedup plc-chunk plc-seal)
for i in "${!stages[@]}"; do
    if [ "${status[$i]}" -ne 0 ]; then
        echo "archive.sh: ${stages[$i]} failed with exit status ${status[$i]}; the archive holds every bundle sealed before it" >&2
        exit "${status[$i]}"
    fi
done
exit 0
