"""Trains a small MLP on the UCI handwritten digits with numpy, inside a container task.

It follows the OpenGPU Network's checkpoint convention (docs/containers.md), so that the
task can be verified by proof of learning:

- It takes OGPU_STEPS steps (the task's [workload.training] steps; STEPS, or 600, when
  run by hand).
- When the runtime sets OGPU_CHECKPOINT_EVERY (K) and OGPU_CHECKPOINT_DIR, the state
  after step s (the parameters and the optimizer's momentum) is written as the files of
  $OGPU_CHECKPOINT_DIR/s, for s = 0, K, 2K, ... and the last step.
- When it sets OGPU_RESUME_FROM (a checkpoint's directory, named by its step) and
  OGPU_STOP_AT, training resumes from that checkpoint and stops at that step.

Every step depends only on the state before it and the step's number: the batches come
from a permutation per epoch seeded by (SEED, epoch), never from a random stream that a
resumed run would have to restore. Rows 0..1499 train; rows 1500..1796 are held out and
measured in /output/metrics.json.
"""

import gzip
import json
import os

import numpy as np

SEED = int(os.environ.get("SEED", "1"))
STEPS = int(os.environ.get("OGPU_STEPS", os.environ.get("STEPS", "600")))
BATCH = 64
LEARNING_RATE = 0.05
MOMENTUM = 0.9
HIDDEN = 64
TRAIN_ROWS = (0, 1500)
EVAL_ROWS = (1500, 1797)
NAMES = ("w1", "b1", "w2", "b2")


def load_digits():
    with gzip.open("/input/digits.csv.gz", "rt") as file:
        data = np.loadtxt(file, delimiter=",", dtype=np.float32)
    return data[:, :-1] / np.float32(16), data[:, -1].astype(np.int64)


def initial_state():
    rng = np.random.default_rng(SEED)
    params = {
        "w1": (rng.standard_normal((64, HIDDEN)) * np.sqrt(2 / 64)).astype(np.float32),
        "b1": np.zeros(HIDDEN, np.float32),
        "w2": (rng.standard_normal((HIDDEN, 10)) * np.sqrt(2 / HIDDEN)).astype(np.float32),
        "b2": np.zeros(10, np.float32),
    }
    return params, {name: np.zeros_like(value) for name, value in params.items()}


def batch_rows(step):
    """The rows step `step` (counted from 1) trains on."""
    rows = TRAIN_ROWS[1] - TRAIN_ROWS[0]
    per_epoch = -(-rows // BATCH)
    epoch, position = divmod(step - 1, per_epoch)
    order = np.random.default_rng([SEED, epoch]).permutation(rows) + TRAIN_ROWS[0]
    return order[position * BATCH : (position + 1) * BATCH]


def forward(params, x):
    hidden = np.maximum(x @ params["w1"] + params["b1"], 0)
    return hidden, hidden @ params["w2"] + params["b2"]


def loss_and_gradients(params, x, y):
    hidden, logits = forward(params, x)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    loss = float(-np.log(probabilities[rows, y] + np.float32(1e-12)).mean())
    d_logits = probabilities
    d_logits[rows, y] -= 1
    d_logits /= np.float32(len(y))
    d_hidden = (d_logits @ params["w2"].T) * (hidden > 0)
    gradients = {
        "w1": x.T @ d_hidden,
        "b1": d_hidden.sum(axis=0),
        "w2": hidden.T @ d_logits,
        "b2": d_logits.sum(axis=0),
    }
    return loss, gradients


def save_checkpoint(directory, params, momentum):
    os.makedirs(directory, exist_ok=True)
    for name in NAMES:
        np.save(os.path.join(directory, f"{name}.npy"), params[name])
        np.save(os.path.join(directory, f"momentum.{name}.npy"), momentum[name])


def load_checkpoint(directory):
    load = lambda file: np.load(os.path.join(directory, file))
    return ({name: load(f"{name}.npy") for name in NAMES}, {name: load(f"momentum.{name}.npy") for name in NAMES})


def report(step, loss):
    """Appends a step to the progress file the provider streams to the client."""
    path = os.environ.get("OGPU_PROGRESS")
    if path:
        with open(path, "a") as file:
            file.write(json.dumps({"step": step, "total": STEPS, "loss": loss}) + "\n")


def main():
    x, y = load_digits()
    every = int(os.environ.get("OGPU_CHECKPOINT_EVERY", "0"))
    checkpoints = os.environ.get("OGPU_CHECKPOINT_DIR", "")
    resume = os.environ.get("OGPU_RESUME_FROM")
    if resume:
        step, stop = int(os.path.basename(resume)), int(os.environ["OGPU_STOP_AT"])
        params, momentum = load_checkpoint(resume)
    else:
        step, stop = 0, STEPS
        params, momentum = initial_state()
        if every:
            save_checkpoint(os.path.join(checkpoints, "0"), params, momentum)
    loss = float("nan")
    while step < stop:
        step += 1
        rows = batch_rows(step)
        loss, gradients = loss_and_gradients(params, x[rows], y[rows])
        for name in NAMES:
            momentum[name] = (np.float32(MOMENTUM) * momentum[name] + gradients[name]).astype(np.float32)
            params[name] = (params[name] - np.float32(LEARNING_RATE) * momentum[name]).astype(np.float32)
        if every and (step % every == 0 or step == stop):
            save_checkpoint(os.path.join(checkpoints, str(step)), params, momentum)
        if step % 10 == 0 or step == stop:
            report(step, loss)

    held_out = slice(*EVAL_ROWS)
    predicted = forward(params, x[held_out])[1].argmax(axis=1)
    correct = int((predicted == y[held_out]).sum())
    samples = EVAL_ROWS[1] - EVAL_ROWS[0]
    os.makedirs("/output/model", exist_ok=True)
    for name in NAMES:
        np.save(f"/output/model/{name}.npy", params[name])
    metrics = {
        "steps": step,
        "train_loss": loss,
        "eval_accuracy": correct / samples,
        "eval_correct": correct,
        "eval_samples": samples,
    }
    with open("/output/metrics.json", "w") as file:
        json.dump(metrics, file, indent=2)
    print(f"step {step}: {correct} of {samples} held-out digits right ({100 * correct / samples:.2f}%)")


if __name__ == "__main__":
    main()
