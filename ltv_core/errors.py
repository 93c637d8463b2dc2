"""Errors the pipeline raises on bad input. Each message names the file, column and value at fault."""


class LtvError(Exception):
    """Base class: anything the pipeline refuses on purpose."""


class SpecError(LtvError, ValueError):
    """A dataset spec or pipeline config is invalid."""


class DataError(LtvError, ValueError):
    """Input data does not match its spec (missing column, bad partition, empty window...)."""


class ValidationFailed(LtvError):
    """A Great Expectations suite failed; the message summarises the failing expectations."""


def describe(exc: BaseException) -> str:
    """The reason of an I/O failure for a one-line message: the OS's words (``Read-only file
    system``) when it has them, else the exception's class and text (botocore's errors are no OSError)."""
    return getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}"


class StoreError(LtvError):
    """The artefact store cannot be used: missing, read-only, a file, unreachable, or an artefact in
    it is damaged. The message names the store, the path and what to do."""
