"""Exceptions raised by ferry.

Every libferry error becomes a :class:`FerryError` (or the subclass for its code), carrying
``.code`` -- the absl/gRPC status code name, e.g. ``"NOT_FOUND"`` -- and ``.message``, which
names the operation, the object and what went wrong.

Some subclasses also derive from the built-in exception a Python caller would expect:
``InvalidArgumentError`` and ``FailedPreconditionError`` are ``ValueError`` s and
``NotFoundError`` is a ``LookupError``.
"""

__all__ = [
    "FerryError",
    "CancelledError",
    "UnknownError",
    "InvalidArgumentError",
    "DeadlineExceededError",
    "NotFoundError",
    "AlreadyExistsError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "FailedPreconditionError",
    "AbortedError",
    "OutOfRangeError",
    "UnimplementedError",
    "InternalError",
    "UnavailableError",
    "DataLossError",
    "UnauthenticatedError",
]


class FerryError(Exception):
    """A ferry operation failed. ``code`` is the status code name, ``message`` the detail."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class CancelledError(FerryError):
    """CANCELLED: the operation was cancelled (GetHandle.cancel, or its client closed)."""


class UnknownError(FerryError):
    """UNKNOWN."""


class InvalidArgumentError(FerryError, ValueError):
    """INVALID_ARGUMENT: a bad key, namespace, dtype, size or buffer (e.g. non-contiguous)."""


class DeadlineExceededError(FerryError):
    """DEADLINE_EXCEEDED: the object did not appear in time, or a wait ran out."""


class NotFoundError(FerryError, LookupError):
    """NOT_FOUND: no such object."""


class AlreadyExistsError(FerryError):
    """ALREADY_EXISTS: the key is taken."""


class PermissionDeniedError(FerryError):
    """PERMISSION_DENIED."""


class ResourceExhaustedError(FerryError):
    """RESOURCE_EXHAUSTED: the arena cannot hold the object."""


class FailedPreconditionError(FerryError, ValueError):
    """FAILED_PRECONDITION: e.g. access to a released Object or a sealed WritableBuffer."""


class AbortedError(FerryError):
    """ABORTED."""


class OutOfRangeError(FerryError):
    """OUT_OF_RANGE."""


class UnimplementedError(FerryError):
    """UNIMPLEMENTED: the ferryd does not support this."""


class InternalError(FerryError):
    """INTERNAL."""


class UnavailableError(FerryError):
    """UNAVAILABLE: no ferryd at the socket, or every holder of the object died."""


class DataLossError(FerryError):
    """DATA_LOSS: the object's last complete copy is gone, or every copy is corrupt."""


class UnauthenticatedError(FerryError):
    """UNAUTHENTICATED."""


_BY_CODE = {
    "CANCELLED": CancelledError,
    "UNKNOWN": UnknownError,
    "INVALID_ARGUMENT": InvalidArgumentError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
    "NOT_FOUND": NotFoundError,
    "ALREADY_EXISTS": AlreadyExistsError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "RESOURCE_EXHAUSTED": ResourceExhaustedError,
    "FAILED_PRECONDITION": FailedPreconditionError,
    "ABORTED": AbortedError,
    "OUT_OF_RANGE": OutOfRangeError,
    "UNIMPLEMENTED": UnimplementedError,
    "INTERNAL": InternalError,
    "UNAVAILABLE": UnavailableError,
    "DATA_LOSS": DataLossError,
    "UNAUTHENTICATED": UnauthenticatedError,
}


def _from_status(code, message):
    """The exception for a status (called by ferry._ferry)."""
    return _BY_CODE.get(code, FerryError)(code, message)
