#!/usr/bin/env bash
# Instructions per operation of tulip's and tokio's runners in `tulip-bench peers`, counted by
# valgrind's callgrind: exact and repeatable where the time of a shared machine is not, so that a
# change to a hot path can be compared with its baseline instruction by instruction (next to the
# time figures, never instead of them: a stall costs time and no instructions).
#
#   bench/instructions.sh [WORKLOAD ...]
#       (default: call_soon timers spawn switch ping_pong queue lock; the ping-pong also on the
#       raw epoll loop, whose system calls are not counted: only what runs in user space)
#
# Each workload runs once per runtime under callgrind (`peers --quick --only W`), counting only
# inside that runtime's runner (`--toggle-collect`): the warm-up and the measured samples, each
# with its loop or runtime built (a few thousand instructions against hundreds of thousands of
# operations). Needs valgrind (`apt-get install valgrind`); takes about a minute per workload.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    echo "bench/instructions.sh: valgrind is needed (apt-get install valgrind)" >&2
    exit 1
fi

# rustix's own backend finds the vDSO through the ELF auxiliary vector, which a process under
# valgrind does not map as the kernel does (it faults there); its libc backend goes through
# glibc instead. A target directory of its own keeps the usual build's cache.
RUSTFLAGS="--cfg rustix_use_libc" CARGO_TARGET_DIR=target/callgrind \
    cargo build --release --quiet -p tulip-bench
bin=target/callgrind/release/tulip-bench

workloads=("$@")
if [ ${#workloads[@]} -eq 0 ]; then
    workloads=(call_soon timers spawn switch ping_pong queue lock)
fi

per_op() { # runner workload -> instructions per operation
    local out collected ops samples
    out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "--toggle-collect=tulip_bench::peers::$1::$2" "$bin" peers --quick --only "$2" 2>&1)
    collected=$(grep -oP 'Collected : \K[0-9]+' <<<"$out")
    ops=$(grep -E "^\| $2 \|" <<<"$out" | awk -F'|' '{gsub(/ /, "", $4); print $4}')
    # Every sample, warm-up included, ran `ops` operations.
    samples=$(grep -oP '([0-9]+) warm-up and ([0-9]+) measured' <<<"$out" |
        awk '{print $1 + $4}')
    if [ -z "$collected" ] || [ -z "$ops" ] || [ -z "$samples" ]; then
        echo "bench/instructions.sh: no count for $1::$2" >&2
        echo "$out" >&2
        exit 1
    fi
    awk -v c="$collected" -v o="$ops" -v s="$samples" 'BEGIN { printf "%.0f", c / (o * s) }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "| workload | tulip instructions/op | tokio instructions/op | tulip/tokio | raw epoll loop | tulip/raw |"
echo "|---|--:|--:|--:|--:|--:|"
for w in "${workloads[@]}"; do
    tulip=$(per_op on_tulip "$w")
    tokio=$(per_op on_tokio "$w")
    raw="–"
    over_raw="–"
    # The ping-pong also has the floor: the same round trips in one straight epoll loop.
    if [ "$w" = ping_pong ]; then
        raw=$(per_op raw_epoll "$w")
        over_raw=$(ratio "$tulip" "$raw")
    fi
    echo "| $w | $tulip | $tokio | $(ratio "$tulip" "$tokio") | $raw | $over_raw |"
done
