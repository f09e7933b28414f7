"""The SDK against a real devnet: bad input refused before anything is reserved, an ONNX
model run from numpy arrays, and a (private) training task's progress followed as it learns."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import ogpu
from conftest import REPO, ogpu_bin

EXAMPLES = REPO / "examples"


def digits(shared_data: Path):
    """Rows 1500..1796 of the digits set, the ones the classifier never saw: pixels scaled
    to [0, 1] as float32, and the true labels."""
    data = np.loadtxt(shared_data / "digits" / "digits.csv.gz", delimiter=",")
    rows = data[1500:1797]
    return (rows[:, :64] / 16.0).astype(np.float32), rows[:, 64].astype(np.int64)


def wasm_spec(program: str) -> dict:
    return {
        "name": "sum",
        "deadline_blocks": 20,
        "workload": {"kind": "wasm", "program": program, "inputs": {"numbers.txt": str(EXAMPLES / "numbers.txt")}},
        "market": {"kind": "auction", "max_price": "0.01", "bid_window": 2},
    }


def test_bad_input_raises_with_the_reason_and_reserves_nothing(client, devnet, shared_data, tmp_path):
    before = client.balance()
    model = shared_data / "onnx" / "digits_mlp.onnx"
    pixels, _ = digits(shared_data)

    with pytest.raises(ogpu.BadInputError) as missing:
        client.submit(wasm_spec(str(tmp_path / "nothing.wat")))
    assert "nothing.wat" in str(missing.value) and "workload.program" in str(missing.value)

    with pytest.raises(ogpu.BadInputError) as wrong_name:
        client.infer(model, {"pixels": pixels})
    assert "no input named 'pixels'" in str(wrong_name.value) and "'input'" in str(wrong_name.value)

    with pytest.raises(ogpu.BadInputError) as not_stored:
        client.submit(wasm_spec("blake3:" + "ab" * 32))
    assert not_stored.value.name == "unknown_blob"

    key = tmp_path / "poor.key"
    subprocess.run([ogpu_bin(), "key", "new", str(key), "--devnet"], check=True, capture_output=True,
                   env={**os.environ, "OGPU_PASSWORD": ""})
    poor = ogpu.Client(api=devnet.api, key=key)
    with pytest.raises(ogpu.RefusedError) as too_poor:
        poor.infer(model, {"input": pixels})
    assert too_poor.value.name == "insufficient_funds"
    assert "too little balance" in str(too_poor.value)

    with pytest.raises(ogpu.ApiError) as unknown:
        client.task("00" * 32).status()
    assert unknown.value.name == "unknown_task"

    assert client.balance() == before
    assert poor.balance()["available"] == "0"


def test_infer_labels_272_of_the_unseen_digits_right(client, shared_data):
    pixels, labels = digits(shared_data)
    outputs = client.infer(shared_data / "onnx" / "digits_mlp.onnx", {"input": pixels}, batch=64)
    assert outputs["probabilities"].shape == (297, 10)
    assert int((outputs["label"] == labels).sum()) == 272


def test_a_training_tasks_progress_yields_falling_losses(client, tmp_path):
    config = (EXAMPLES / "digits-train" / "mlp.toml").read_text()
    config = config.replace("steps = 1200", "steps = 300").replace("checkpoint_every = 150", "checkpoint_every = 50")
    (tmp_path / "mlp.toml").write_text(config)
    spec = {
        "name": "digits-train-short",
        "deadline_blocks": 100,
        "workload": {
            "kind": "train",
            "program": str(tmp_path / "mlp.toml"),
            "inputs": {"digits.csv.gz": str(EXAMPLES / "digits-train" / "digits.csv.gz")},
            "args": ["device=cpu"],
            "limits": {"memory_mb": 512, "timeout_s": 300},
        },
        "market": {"kind": "auction", "max_price": "0.05", "bid_window": 3},
        "verification": {"policy": "none"},
    }
    task = client.submit(spec, wait=False)
    steps = list(task.progress())
    # Every checkpoint's step is reported (with the held-out loss); steps between them at
    # most four times a second.
    assert len(steps) >= 6, steps
    assert [s["step"] for s in steps] == sorted(s["step"] for s in steps) and steps[-1]["step"] == 300
    losses = [step["loss"] for step in steps]
    assert losses[-1] < losses[0], losses
    evaluated = [step["eval_loss"] for step in steps if "eval_loss" in step]
    assert len(evaluated) == 6 and evaluated[-1] < evaluated[0], evaluated

    task.wait(timeout=300)
    assert task.status() == "completed"
    # Training is private by default: this process handed the provider its keys, and the
    # result opens with this client's key.
    assert task.detail()["spec"]["private"] is not None
    written = task.result(tmp_path / "out")
    assert any(path.endswith("metrics.json") for path in written), written
