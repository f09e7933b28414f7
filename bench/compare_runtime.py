"""The same workloads as `ogpu bench runtime`, in PyTorch and onnxruntime on this machine.

Run by bench/compare-runtime.sh, which installs the packages and puts both figures side
by side. Every setting here mirrors crates/cli/src/bench_runtime.rs: the data, the models,
the optimizers, the batch sizes, the warm-up and the timed window. Prints one JSON object.

    python3 bench/compare_runtime.py SHARED_DATA_DIR
"""

import gzip
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
import torch
from tokenizers import Tokenizer

THREADS = os.cpu_count()
RUNS = 3
BATCH = 32
WARM_UP = 20
MLP_STEPS = 3000
CNN_STEPS = 600
DIGITS_BATCHES = 1000
DIGITS_BATCH = 256
MINILM_BATCHES = 20
MINILM_BATCH = 32
# Words that are each one WordPiece token: 30 of them and [CLS] and [SEP] make 32 tokens.
WORDS = ["the", "network", "runs", "small", "models", "on", "idle", "cards", "and", "every", "worker",
         "checks", "a", "share", "of", "results", "before", "payment", "is", "made", "to", "each", "honest",
         "provider"]


def made_up_sentences(count, words):
    """The bench's sentences: the same linear congruential draw as the Rust side."""
    state, lines = 1, []
    for _ in range(count):
        line = []
        for _ in range(words):
            state = (state * 1103515245 + 12345) % (1 << 32)
            line.append(WORDS[(state >> 16) % len(WORDS)])
        lines.append(" ".join(line))
    return lines


def digits(shared):
    with gzip.open(os.path.join(shared, "digits", "digits.csv.gz"), "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return data[:, :64] / np.float32(16.0), data[:, 64].astype(np.int64)


def train_rate(model, optimizer, x, y, steps, image):
    """Training samples per second over the steps after the warm-up, one step per batch
    of a seeded permutation, reading the loss back every step as the train runtime does."""
    x, y = torch.from_numpy(x[:1500]), torch.from_numpy(y[:1500])
    if image:
        x = x.reshape(-1, 1, 8, 8)
    generator = torch.Generator().manual_seed(1)
    order = torch.randperm(1500, generator=generator)
    position, start = 0, None
    for step in range(1, steps + 1):
        if position + BATCH > 1500:
            order, position = torch.randperm(1500, generator=generator), 0
        batch = order[position:position + BATCH]
        position += BATCH
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        loss.backward()
        optimizer.step()
        loss.item()
        if step == WARM_UP:
            start = time.perf_counter()
    return (steps - WARM_UP) * BATCH / (time.perf_counter() - start)


def best(measure):
    """The highest of RUNS measurements, as the Rust side reports."""
    return max(measure() for _ in range(RUNS))


def mlp_rate(x, y):
    torch.manual_seed(1)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    return train_rate(mlp, torch.optim.Adam(mlp.parameters(), lr=0.002), x, y, MLP_STEPS, False)


def cnn_rate(x, y):
    torch.manual_seed(1)
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding="same"), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, padding="same"), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(16 * 64, 10))
    return train_rate(cnn, torch.optim.SGD(cnn.parameters(), lr=0.05, momentum=0.9), x, y, CNN_STEPS, True)


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def steady_rate(batches, run, per_batch):
    """Items per second from the end of the first batch to the end of the last, as the
    Rust side times between its first and last progress report."""
    run(batches[0])
    start = time.perf_counter()
    for batch in batches[1:]:
        run(batch)
    return (len(batches) - 1) * per_batch / (time.perf_counter() - start)


def digits_inference(shared, x):
    sess = session(os.path.join(shared, "onnx", "digits_mlp.onnx"))
    rows = np.tile(x, (-(-DIGITS_BATCHES * DIGITS_BATCH // len(x)), 1))
    batches = [rows[i * DIGITS_BATCH:(i + 1) * DIGITS_BATCH] for i in range(DIGITS_BATCHES)]
    return steady_rate(batches, lambda b: sess.run(None, {"input": b}), DIGITS_BATCH)


def minilm(shared):
    folder = os.path.join(shared, "minilm")
    sess = session(os.path.join(folder, "model.onnx"))
    tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tokenizer.enable_padding()
    sentences = made_up_sentences(MINILM_BATCHES * MINILM_BATCH, 30)
    batches = []
    for i in range(0, len(sentences), MINILM_BATCH):
        encodings = tokenizer.encode_batch(sentences[i:i + MINILM_BATCH])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        assert ids.shape == (MINILM_BATCH, 32), ids.shape
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        batches.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})

    def embed(feed):
        states = sess.run(None, feed)[0].astype(np.float64)
        mask = feed["attention_mask"][:, :, None].astype(np.float64)
        mean = (states * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return (mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    return steady_rate(batches, embed, MINILM_BATCH)


def main():
    shared = sys.argv[1]
    torch.set_num_threads(THREADS)
    x, y = digits(shared)
    report = {
        "threads": THREADS,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "train_mlp_samples_per_s": round(best(lambda: mlp_rate(x, y))),
        "train_cnn_samples_per_s": round(best(lambda: cnn_rate(x, y))),
        "infer_digits_rows_per_s": round(best(lambda: digits_inference(shared, x))),
        "infer_minilm_sentences_per_s": round(best(lambda: minilm(shared)), 1),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
