"""The exceptions the SDK raises. Each carries ``name``: the API's error name
(``insufficient_funds``, ``unknown_task``, ...) or the SDK's own (``bad_spec``,
``timeout``, ...), and a message that says what was wrong."""

from __future__ import annotations


class OgpuError(Exception):
    """Anything the network or the SDK refused or could not do."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} [{self.name}]"


class BadInputError(OgpuError):
    """A spec, file, key, array or argument the SDK cannot use. Nothing was sent."""


class RefusedError(OgpuError):
    """The chain or a node's mempool refused the transaction, or would have: too little
    balance, a fee or nonce it does not take, a task that may no longer be cancelled."""


class NetworkError(OgpuError):
    """The node's API could not be reached."""


class TaskFailedError(OgpuError):
    """The task ended without a result: failed, cancelled, or no provider took it."""


class TimeoutError(OgpuError):  # noqa: A001 - the SDK's own, carrying a name
    """A wait ran out of time; the task goes on."""


class ApiError(OgpuError):
    """The API answered with an error not covered above (an unknown task, for one)."""


_KINDS: dict[str, type[OgpuError]] = {
    "bad_input": BadInputError,
    "refused": RefusedError,
    "network": NetworkError,
    "timeout": TimeoutError,
    "task_failed": TaskFailedError,
}


def from_native(error: Exception) -> OgpuError:
    """The subclass for an error raised by ``ogpu._native`` (args: kind, name, message)."""
    kind, name, message = error.args
    return _KINDS.get(kind, ApiError)(name, message)
