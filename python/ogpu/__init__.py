"""The OpenGPU Network's Python SDK.

    import ogpu
    client = ogpu.Client(api="http://127.0.0.1:8080", key="client.key", password="")
    labels = client.infer("model.onnx", {"input": pixels})["label"]

Signing, encoding and the API's types are ``ogpu-client``'s (Rust, through PyO3): the SDK
signs exactly as the ``ogpu`` command does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Union

from . import _native
from .errors import (
    ApiError,
    BadInputError,
    NetworkError,
    OgpuError,
    RefusedError,
    TaskFailedError,
    TimeoutError,
    from_native,
)

__all__ = [
    "Client",
    "Task",
    "OgpuError",
    "BadInputError",
    "RefusedError",
    "NetworkError",
    "TaskFailedError",
    "TimeoutError",
    "ApiError",
]

Spec = Union[str, os.PathLike, Mapping[str, Any]]


def _call(function, *args):
    """Calls into ``_native``, raising its errors as ``OgpuError`` subclasses."""
    try:
        return function(*args)
    except _native.NativeError as error:
        raise from_native(error) from None


class Client:
    """A client of one node's API, signing with the key in ``key`` (an ``ogpu key new``
    or devnet key file) opened with ``password``. Without a key it can only read."""

    def __init__(self, api: str = "http://127.0.0.1:8080", key: Optional[Union[str, os.PathLike]] = None,
                 password: str = "") -> None:
        self._native = _call(_native.NativeClient, api, None if key is None else os.fspath(key), password)
        self.api = api

    @property
    def address(self) -> Optional[str]:
        """The key's address (``ogpu1...``), or ``None`` without a key."""
        return self._native.address

    def balance(self, address: Optional[str] = None) -> Dict[str, str]:
        """The account's money by where it sits, each a decimal string of oGPU:
        ``available``, ``escrow``, ``trust_lock``, ``staked`` (and ``unbonding``)."""
        account = json.loads(_call(self._native.account, address))
        return {
            "available": account["balance"],
            "escrow": account["escrow"],
            "trust_lock": account["trust_lock"],
            "staked": account["staked"],
            "unbonding": account["unbonding"],
        }

    def providers(self) -> List[Dict[str, Any]]:
        """The providers registered on chain: address, devices, stake, reputation."""
        return json.loads(_call(self._native.providers))["providers"]

    def submit(self, spec: Spec, wait: bool = True, timeout: Optional[float] = None) -> "Task":
        """Submits a task. ``spec`` is the path of a TOML (or JSON) spec, or a dict of the
        same shape whose file paths are relative to the working directory. The files it
        names are uploaded where the store lacks them; nothing is reserved if any check
        fails. A private task (``private = true``, the default for ``train``) has its
        files sealed as they upload, and a background thread of this process hands its
        keys to the providers and verifiers the chain picks, until the task ends. With
        ``wait``, returns once the task completed (raising ``TaskFailedError`` if it ended
        otherwise)."""
        if isinstance(spec, Mapping):
            task_id = _call(self._native.submit_document, json.dumps(spec), os.getcwd())
        else:
            task_id = _call(self._native.submit_file, os.fspath(spec))
        task = Task(self, task_id)
        return task.wait(timeout) if wait else task

    def task(self, task_id: str) -> "Task":
        """A task already on chain, by its id."""
        return Task(self, task_id)

    def infer(self, model: Union[str, os.PathLike], inputs: Mapping[str, Any],
              outputs: Optional[List[str]] = None, batch: Optional[int] = None,
              max_price: str = "0.01", verification: Union[str, Mapping[str, Any]] = "none",
              timeout: Optional[float] = None) -> Dict[str, Any]:
        """Runs an ONNX model on the network and returns its outputs.

        ``model`` is an ``.onnx`` file; ``inputs`` maps each of the model's input names to
        a numpy array (uploaded as ``.npy``); ``outputs`` picks the outputs to return (all
        by default); ``batch`` the rows per model run. ``max_price`` (oGPU) caps what a
        provider is paid; ``verification`` is ``"none"`` or a verification table such as
        ``{"policy": "spot_check", "p": 0.25}``. Returns a dict of output name to array."""
        import numpy as np

        model = Path(model)
        expected = _call(_native.onnx_inputs, os.fspath(model))
        unknown = sorted(set(inputs) - set(expected))
        if unknown:
            raise BadInputError("bad_input", f"{model} has no input named {', '.join(map(repr, unknown))}; "
                                             f"its inputs are {', '.join(map(repr, expected))}")
        missing = sorted(set(expected) - set(inputs))
        if missing:
            raise BadInputError("bad_input", f"{model} needs the input(s) {', '.join(map(repr, missing))}")
        with tempfile.TemporaryDirectory(prefix="ogpu-infer-") as work:
            work = Path(work)
            files, args = {}, []
            for name, array in inputs.items():
                file = f"{_plain(name)}.npy"
                np.save(work / file, np.ascontiguousarray(array), allow_pickle=False)
                files[file] = os.fspath(work / file)
                args.append(f"input={name}:{file}")
            args += [f"output={name}" for name in outputs or []]
            if batch is not None:
                args.append(f"batch={batch}")
            spec = {
                "name": f"infer {model.name}"[:64],
                "deadline_blocks": 50,
                "workload": {"kind": "onnx", "program": os.fspath(model.resolve()), "inputs": files, "args": args},
                "market": {"kind": "auction", "max_price": max_price, "bid_window": 3},
                "verification": {"policy": verification} if isinstance(verification, str) else dict(verification),
            }
            task = self.submit(spec, wait=True, timeout=timeout)
            written = task.result(work / "out")
            return {Path(path).stem: np.load(path, allow_pickle=False) for path in written
                    if Path(path).suffix == ".npy"}

    def run_local(self, spec: Union[str, os.PathLike], out_dir: Optional[Union[str, os.PathLike]] = None
                  ) -> Dict[str, Any]:
        """Runs the spec on this machine, without the network, as ``ogpu task run-local``
        does (it runs that command: ``OGPU_BIN``, or ``ogpu`` on the ``PATH``). Returns
        its report: ``output`` (the hash the network would agree on), ``files``, ..."""
        binary = os.environ.get("OGPU_BIN") or shutil.which("ogpu")
        if binary is None:
            raise BadInputError("no_runtime", "run_local needs the ogpu command: put it on the PATH or set OGPU_BIN")
        command = [binary, "-o", "json", "task", "run-local", os.fspath(spec)]
        if out_dir is not None:
            command += ["--out", os.fspath(out_dir)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            kind = TaskFailedError if done.returncode == 1 else BadInputError
            raise kind("run_local", lines[-1] if lines else f"ogpu exited with {done.returncode}")
        return json.loads(done.stdout)


def _plain(name: str) -> str:
    """An input name as a file name the network takes (letters, digits, '.', '_', '-')."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).lstrip(".")
    return cleaned or "input"


class Task:
    """A task on chain: wait for it, read its progress and logs, fetch its result."""

    def __init__(self, client: Client, task_id: str) -> None:
        self._client = client
        self.id = task_id

    def __repr__(self) -> str:
        return f"Task({self.id!r})"

    def detail(self) -> Dict[str, Any]:
        """The task as the API shows it: spec, phase, executors, escrow and events."""
        return json.loads(_call(self._client._native.task, self.id))

    def status(self) -> str:
        """Where the task is: ``bidding``, ``executing``, ``revealing``, ``racing``,
        ``verifying``, ``challengeable``; once over, how it ended: ``completed``,
        ``failed``, ``cancelled`` or ``unfilled``."""
        detail = self.detail()
        phase = detail["phase"]
        if isinstance(phase, dict) and "done" in phase:
            return _outcome_kind(phase["done"])
        return detail["phase_name"]

    def wait(self, timeout: Optional[float] = None) -> "Task":
        """Waits until the task ends (at most ``timeout`` seconds, raising
        ``TimeoutError``); returns the task if it completed, raises ``TaskFailedError``
        with the reason otherwise."""
        outcome = json.loads(_call(self._client._native.wait, self.id, timeout))
        kind = _outcome_kind(outcome)
        if kind != "completed":
            detail = outcome.get(kind) if isinstance(outcome, dict) else None
            reason = f"task {self.id} ended {kind}" + (f": {detail}" if detail else "")
            raise TaskFailedError(kind, reason)
        return self

    def progress(self) -> Iterator[Dict[str, Any]]:
        """The steps the provider reports, each a dict with ``step`` (and ``total``) and
        its metrics such as ``loss``: as they come while the task runs, until it finishes;
        the kept ones once it has ended."""
        lines = _call(self._client._native.progress, self.id)
        return (json.loads(line) for line in _native_iter(lines))

    def logs(self, follow: bool = False) -> Iterator[Dict[str, Any]]:
        """The task's signed log entries (lines, steps, start and end): those kept, or
        with ``follow`` each as it arrives, without end."""
        if follow:
            return (json.loads(line) for line in _native_iter(_call(self._client._native.follow_logs, self.id)))
        return iter(json.loads(_call(self._client._native.logs, self.id)))

    def result(self, out_dir: Union[str, os.PathLike]) -> List[str]:
        """Downloads the result into ``out_dir``, every file checked against the result
        hash on chain (a private task's opened with this client's key, which must be the
        task's client's); returns the paths written."""
        return [os.fspath(path) for path in _call(self._client._native.result, self.id, os.fspath(out_dir))]

    def top_up(self, max_price: str) -> None:
        """Raises the price cap of a task still being auctioned to ``max_price`` oGPU
        (a decimal string); what the higher cap adds is reserved from the balance."""
        _call(self._client._native.top_up, self.id, str(max_price))

    def cancel(self) -> None:
        """Cancels the task before any provider sealed a bid; its escrow and trust lock
        come back."""
        _call(self._client._native.cancel, self.id)


def _native_iter(lines) -> Iterator[str]:
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except _native.NativeError as error:
            raise from_native(error) from None
        yield line


def _outcome_kind(outcome: Any) -> str:
    return outcome if isinstance(outcome, str) else next(iter(outcome))
