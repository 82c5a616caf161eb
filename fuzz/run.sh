#!/usr/bin/env bash
# Fuzz the selectors: run the cargo-fuzz target `selector_ops` (random operation sequences
# applied to every backend and to a model, which must all agree) for N seconds (default 60).
# Usage: fuzz/run.sh [SECONDS]. Needs the nightly toolchain; installs cargo-fuzz if missing.
set -euo pipefail

seconds="${1:-60}"
cd "$(dirname "$0")"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi

cargo +nightly fuzz run selector_ops -- -max_total_time="$seconds"
