#!/usr/bin/env bash
# Builds every fuzz target once (nightly toolchain, cargo-fuzz) and runs each for SECONDS
# (default 30) over: its regression inputs (regressions/TARGET: crashes found before and
# fixed, kept so they stay fixed), its seeds (seeds/TARGET: valid examples to mutate), and
# the corpus it grows (corpus/TARGET, not committed). Stops at the first crash, leaving the
# input under artifacts/TARGET; fix it, then copy the input into regressions/TARGET.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
fuzz() { cargo +nightly fuzz "$@"; }

fuzz build --release
for target in $(fuzz list); do
    mkdir -p "corpus/$target"
    inputs=("corpus/$target")
    for dir in "regressions/$target" "seeds/$target"; do
        if [ -d "$dir" ]; then inputs+=("$dir"); fi
    done
    echo "--- fuzz $target for ${seconds}s"
    fuzz run --release "$target" "${inputs[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 -print_final_stats=1 2>&1 |
        grep -E '^(stat::number_of_executed_units|==|SUMMARY|Done)|panicked|ERROR' || true
    if [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
        echo "fuzz target $target crashed on: $(ls "artifacts/$target")" >&2
        exit 1
    fi
done
