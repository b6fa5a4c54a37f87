from __future__ import annotations

from typing import ClassVar

from foreman_protocol.messages import ErrorCode


class ServiceError(Exception):
    """A refused action; `code` is a protocol error code (docs/protocol.md)."""

    code: ClassVar[ErrorCode] = "conflict"
    http_status = 409

    def __init__(self, message: str, **data: object) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class Forbidden(ServiceError):
    code = "forbidden"
    http_status = 403


class NotFound(ServiceError):
    code = "not_found"
    http_status = 404


class Conflict(ServiceError):
    code = "conflict"
    http_status = 409


class StaleLease(ServiceError):
    code = "stale_lease"
    http_status = 409


class Estopped(ServiceError):
    code = "estopped"
    http_status = 409


class RobotOffline(ServiceError):
    code = "robot_offline"
    http_status = 409


class Invalid(ServiceError):
    """The request is well-formed but its content is not acceptable (a label, an export selection)."""

    code = "bad_message"
    http_status = 422
