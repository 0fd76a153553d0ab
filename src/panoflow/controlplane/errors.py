"""Errors the API answers with: one class whose ``code`` is an error shape of the Panorama model, and the
helpers every handler builds them with (one place: handlers import them from here, never from each other)."""

from __future__ import annotations

from typing import Any

from panoflow.exceptions import PanoflowError, Problem

__all__ = ["ApiError", "access_denied", "conflict", "manifest_error", "not_found", "validation"]


class ApiError(PanoflowError):
    """An error answered to an API client: ``code`` names a model error shape (``ValidationException``...).

    ``fields`` are extra members of that shape (``ResourceId``, ``Fields``...); the HTTP status comes from the
    model.
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


def manifest_error(member: str, problems: tuple[Problem, ...] | list[Problem]) -> ApiError:
    """A ``ValidationException`` (400) for a manifest in input member ``member`` that has ``problems`` (at
    least one error): the first error in the message, up to ten in ``Fields`` (``member#<JSON pointer>``)."""
    errors = [p for p in problems if p.severity == "error"]
    fields = [{"Name": f"{member}#{p.pointer}", "Message": p.message} for p in errors[:10]]
    first = errors[0]
    message = (f"{len(errors)} problem(s) in {member}; first at JSON pointer '{first.pointer or '/'}': "
               f"{first.message}" + (f" (hint: {first.hint})" if first.hint else ""))
    return ApiError("ValidationException", message, Reason="FIELD_VALIDATION_FAILED", Fields=fields)
