"""Errors the API answers with: one class whose ``code`` is an error shape of the Panorama model."""

from __future__ import annotations

from typing import Any

from panoflow.exceptions import PanoflowError

__all__ = ["ApiError", "access_denied", "conflict", "not_found", "validation"]


class ApiError(PanoflowError):
    """An error answered to an API client: ``code`` names a model error shape (``ValidationException``...).

    ``fields`` are extra members of that shape (``ResourceId``, ``Fields``...); the HTTP status comes from the model.
    """

    def __init__(self, code: str, message: str, **fields: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields


def validation(message: str, field: str | None = None, reason: str = "FIELD_VALIDATION_FAILED") -> ApiError:
    """A ``ValidationException`` (400); ``field`` names the offending input member (dotted path)."""
    extra: dict[str, Any] = {"Reason": reason}
    if field is not None:
        extra["Fields"] = [{"Name": field, "Message": message}]
    return ApiError("ValidationException", message, **extra)


def not_found(resource_type: str, resource_id: str) -> ApiError:
    """A ``ResourceNotFoundException`` (404)."""
    return ApiError("ResourceNotFoundException", f"{resource_type} {resource_id} not found",
                    ResourceId=resource_id, ResourceType=resource_type)


def conflict(message: str, resource_type: str, resource_id: str) -> ApiError:
    """A ``ConflictException`` (409)."""
    return ApiError("ConflictException", message, ResourceId=resource_id, ResourceType=resource_type)


def access_denied(message: str) -> ApiError:
    """An ``AccessDeniedException`` (403)."""
    return ApiError("AccessDeniedException", message)
