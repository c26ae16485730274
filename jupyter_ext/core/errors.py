"""The API's error codes and the exception that carries them to the client."""

from __future__ import annotations

HTTP_STATUS: dict[str, int] = {
    "BOX_NOT_FOUND": 404,
    "EXEC_NOT_FOUND": 404,
    "SESSION_NOT_FOUND": 404,
    "SNAPSHOT_NOT_FOUND": 404,
    "IMAGE_NOT_FOUND": 404,
    "NAME_ALREADY_EXISTS": 409,
    "BOX_ALREADY_RUNNING": 409,
    "RESOURCE_EXCEEDED": 409,
    "BOX_NOT_RUNNING": 400,
    "EXEC_ALREADY_FINISHED": 400,
    "SESSION_DEAD": 400,
    "IMAGE_PULL_FAILED": 400,
    "TIMEOUT": 400,
    "RUNTIME_ERROR": 400,
    "CANCELED": 400,
    "VALIDATION_ERROR": 422,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "STATE_DIR_BUSY": 503,
}


class BoxRunError(Exception):
    """An error the API reports as ``{"code": ..., "message": ...}``.

    ``status`` overrides the code's usual HTTP status (the contract answers 400, not
    422, for an unknown ``:action`` or a missing multipart field).
    """

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or HTTP_STATUS.get(code, 400)

    def to_json(self) -> dict[str, str]:
        """The error body of the API."""
        return {"code": self.code, "message": self.message}


def validation(message: str, status: int = 422) -> BoxRunError:
    """A VALIDATION_ERROR with ``message``."""
    return BoxRunError("VALIDATION_ERROR", message, status)
