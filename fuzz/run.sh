#!/usr/bin/env bash
# Run every cargo-fuzz target for N seconds each (default 60), one after the other:
#   selector_ops      random selector operations on every backend against a model
#   timer_heap        call_at / cancel / clock advances against a BTreeMap
#   loop_schedules    call_soon / call_later / call_at / cancel / stop against the proptests' model
#   transport_stream  a TCP transport's byte stream cut, paused, ended and reset at random
# Usage: fuzz/run.sh [SECONDS] [TARGET...]. Needs the nightly toolchain; installs cargo-fuzz if
# missing. A crash is saved under fuzz/artifacts/TARGET/ and stops the script.
set -euo pipefail

seconds="${1:-60}"
shift || true
cd "$(dirname "$0")"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
for target in "${targets[@]}"; do
    echo "=== $target, ${seconds} s"
    # -timeout: one input running 10 s is a hang (a lost wake-up), reported as a finding.
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -timeout=10
done
