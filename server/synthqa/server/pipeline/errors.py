"""Errors the service reports for a whole call, independent of gRPC.

The servicer maps each kind to a gRPC status code and `google.rpc` details; code below the
servicer raises these and never imports grpc.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its path in the request (`options.top_p`) and what is wrong with it."""

    field: str
    description: str


class ServiceError(Exception):
    """Base of the errors that end a call with a status."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """The request is malformed; `violations` names every bad field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = list(violations)

    @classmethod
    def single(cls, field_path: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field_path, description)])


class ResourceExhausted(ServiceError):
    """A request goes past one of the server's limits. With `retry_after_seconds`, the limit
    is on what the server holds now, and the same request may fit later."""

    def __init__(
        self, subject: str, description: str, retry_after_seconds: float | None = None
    ) -> None:
        super().__init__(f"{subject}: {description}")
        self.subject = subject
        self.description = description
        self.retry_after_seconds = retry_after_seconds


class Unavailable(ServiceError):
    """The engine is not ready, is restarting, or the server is shutting down; the call may
    be retried, after `retry_after_seconds` where the server can tell."""

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


@dataclass
class ViolationCollector:
    """Gathers every violation of a request so the client learns all of them at once."""

    violations: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.violations.append(FieldViolation(field_path, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)
