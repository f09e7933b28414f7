#!/usr/bin/env bash
# Our AI runtimes against PyTorch and onnxruntime on this machine, in one go (outside CI).
#
#   bench/compare-runtime.sh [SHARED_DATA_DIR]    # default: ../shared/data
#
# Installs torch, onnxruntime, tokenizers and numpy from PyPI into a virtual environment
# (torch brings its CUDA libraries, about 5 GB; it runs on the CPU here), builds `ogpu`
# with the ort feature, runs `ogpu bench runtime --json` (with onnxruntime's own library
# for engine=ort) and then the same workloads in Python (bench/compare_runtime.py), and
# prints one JSON object: both sides' figures and, for each, ours over theirs in the keys
# ending in `_ratio`.
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(realpath "${1:-../shared/data}")
venv=${OGPU_BENCH_VENV:-target/bench-venv}

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check torch onnxruntime tokenizers numpy >&2
library=$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)

cargo build --release --features ort >&2
ours=$(target/release/ogpu bench runtime --json --data "$data" --onnxruntime "$library")
theirs=$("$venv/bin/python" bench/compare_runtime.py "$data")

python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
pairs = {
    "train_mlp_ratio": ("train_mlp_samples_per_s", "train_mlp_samples_per_s"),
    "train_cnn_ratio": ("train_cnn_samples_per_s", "train_cnn_samples_per_s"),
    "infer_digits_tract_ratio": ("infer_digits_tract_rows_per_s", "infer_digits_rows_per_s"),
    "infer_digits_ort_ratio": ("infer_digits_ort_rows_per_s", "infer_digits_rows_per_s"),
    "infer_minilm_tract_ratio": ("infer_minilm_tract_sentences_per_s", "infer_minilm_sentences_per_s"),
    "infer_minilm_ort_ratio": ("infer_minilm_ort_sentences_per_s", "infer_minilm_sentences_per_s"),
}
report = {"ours": ours, "theirs": theirs}
for key, (mine, other) in pairs.items():
    if ours.get(mine) and theirs.get(other):
        report[key] = round(ours[mine] / theirs[other], 3)
print(json.dumps(report))
PY
