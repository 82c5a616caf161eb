#!/usr/bin/env bash
# Instructions per operation of tulip's and tokio's runners in `tulip-bench peers`, counted by
# valgrind's callgrind: exact and repeatable where the time of a shared machine is not, so that a
# change to a hot path can be compared with its baseline instruction by instruction (next to the
# time figures, never instead of them: a stall costs time and no instructions).
#
#   bench/instructions.sh [WORKLOAD ...]
#       (default: call_soon timers spawn switch ping_pong queue lock; the ping-pong also on the
#       raw epoll loop, whose system calls are not counted: only what runs in user space)
#   bench/instructions.sh echo
#       the echo servers of `tulip-bench echo` instead (tulip's two styles, tokio, mio, the
#       raw loop): each one's instructions per round trip, in user space, under the load of
#       `tulip-bench echo-load` (50 connections, 64-byte messages, as `echo`), and its ratio
#       to mio's
#
# Each workload runs once per runtime under callgrind (`peers --quick --only W`), counting only
# inside that runtime's runner (`--toggle-collect`): the warm-up and the measured samples, each
# with its loop or runtime built (a few thousand instructions against hundreds of thousands of
# operations). An echo server runs under callgrind as its own process: a first load warms it
# up, its counters are zeroed (`callgrind_control -z`), and what it does during a second load
# of 2 s is dumped and divided by the round trips that load counted (the second load's 50
# accepts are in the count: about 1% of it). Needs valgrind (`apt-get install valgrind`);
# takes about a minute per workload.
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

# One echo server's instructions per round trip (see the header).
echo_per_trip() { # server -> instructions per round trip
    local impl=$1 dir port pid trips total dump
    dir=$(mktemp -d)
    port=$((20000 + RANDOM % 20000))
    # The server exits when its stdin closes: a `sleep` holds it open, killed at the end.
    sleep 3600 | valgrind --tool=callgrind --callgrind-out-file="$dir/cg" \
        "$bin" echo-server --impl "$impl" --addr "127.0.0.1:$port" >"$dir/server.log" 2>&1 &
    # Warm-up, and wait until the server listens (valgrind starts slowly).
    for _ in $(seq 100); do
        if "$bin" echo-load --addr "127.0.0.1:$port" --duration-ms 300 >/dev/null 2>&1; then
            break
        fi
        sleep 0.3
    done
    pid=$(pgrep -f "echo-server --impl $impl --addr 127.0.0.1:$port" | head -1)
    callgrind_control -z "$pid" >/dev/null 2>&1
    trips=$("$bin" echo-load --addr "127.0.0.1:$port" --duration-ms 2000 |
        grep -oP 'round trips: \K[0-9]+')
    callgrind_control -d "$pid" >/dev/null 2>&1
    dump=$(ls -t "$dir"/cg.* | head -1)
    total=$(grep -oP '^totals: \K[0-9]+' "$dump")
    kill "$pid" 2>/dev/null || true
    # This runs in a subshell (`$(...)`): its own pid, not `$$`, is the sleep's parent.
    pkill -P "$BASHPID" -x sleep 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$dir"
    if [ -z "$trips" ] || [ -z "$total" ] || [ "$trips" -eq 0 ]; then
        echo "bench/instructions.sh: no count for the $impl echo server" >&2
        exit 1
    fi
    awk -v c="$total" -v t="$trips" 'BEGIN { printf "%.0f", c / t }'
}

if [ "${1:-}" = echo ]; then
    mio=$(echo_per_trip mio)
    echo "| echo server | instructions per round trip | × mio |"
    echo "|---|--:|--:|"
    for server in tulip tulip-protocol tokio mio raw; do
        if [ "$server" = mio ]; then n=$mio; else n=$(echo_per_trip "$server"); fi
        echo "| $server | $n | $(awk -v a="$n" -v b="$mio" 'BEGIN { printf "%.2f", a / b }') |"
    done
    exit 0
fi

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
    # A count of 0: the runner was never entered under that name (inlined into its caller).
    if [ -z "$collected" ] || [ "$collected" = 0 ] || [ -z "$ops" ] || [ -z "$samples" ]; then
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
