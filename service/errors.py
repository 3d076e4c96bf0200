"""Map every exception that reaches the HTTP edge to one JSON error body, in one place."""

import logging
from dataclasses import dataclass
from typing import Any, TypedDict

from litestar import Request, Response
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from data_tools.errors import (
    InvalidParameterError,
    InvalidPhotoError,
    MemberlensError,
    ModelNotLoadedError,
    PhotoTooLargeError,
    UnsupportedPhotoTypeError,
)

logger = logging.getLogger(__name__)


class ErrorBody(TypedDict):
    """The JSON body of every error response; `code` is stable, `message` is for people."""

    code: str
    message: str
    status: int


@dataclass(frozen=True)
class ErrorKind:
    """One kind of error answer: its status, its stable code and a message that says what to do."""

    status: int
    code: str
    message: str


INVALID_PHOTO = ErrorKind(
    400, "invalid_photo", "The photo could not be read; upload a complete, uncorrupted image file."
)
PHOTO_TOO_LARGE = ErrorKind(
    413, "photo_too_large", "The upload is too large; send a smaller photo (fewer bytes or pixels)."
)
UNSUPPORTED_PHOTO_TYPE = ErrorKind(
    415,
    "unsupported_photo_type",
    "The file is not an image type we take; send a photo as JPEG or PNG.",
)
INVALID_PARAMETERS = ErrorKind(
    422,
    "invalid_parameters",
    "Send one photo as a multipart/form-data file in the field `image`, "
    "for example: curl -F image=@photo.jpg http://HOST/v1/identify",
)
MODEL_NOT_LOADED = ErrorKind(
    503,
    "model_not_loaded",
    "No model is loaded; check /readyz and start the service with a bundle.",
)
INTERNAL_ERROR = ErrorKind(
    500,
    "internal_error",
    "The server failed on this request; try again, and report it if it stays.",
)
NOT_FOUND = ErrorKind(404, "not_found", "No such route; the API is POST /v1/identify.")
METHOD_NOT_ALLOWED = ErrorKind(
    405, "method_not_allowed", "This route does not take that method; see DESIGN.md for the API."
)

# Subclasses come before their bases: the first matching entry wins.
_DOMAIN_KINDS: tuple[tuple[type[MemberlensError], ErrorKind], ...] = (
    (InvalidPhotoError, INVALID_PHOTO),
    (PhotoTooLargeError, PHOTO_TOO_LARGE),
    (UnsupportedPhotoTypeError, UNSUPPORTED_PHOTO_TYPE),
    (InvalidParameterError, INVALID_PARAMETERS),
    (ModelNotLoadedError, MODEL_NOT_LOADED),
)


def error_response(kind: ErrorKind, message: str | None = None) -> Response[ErrorBody]:
    """Build the JSON response for one kind of error, with `message` in place of the default."""
    body = ErrorBody(code=kind.code, message=message or kind.message, status=kind.status)
    return Response(body, status_code=kind.status)


def handle_domain_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Answer a domain error with its status and the error's own message (it says how to fix it).

    A domain error with no entry here (a dataset or weights error, say) is a fault of the
    server, not of the request, so it becomes a 500 like any unexpected exception.
    """
    kind = next((kind for error_type, kind in _DOMAIN_KINDS if isinstance(exc, error_type)), None)
    if kind is None:
        return handle_unexpected_error(request, exc)

    _log_rejected(request, kind)
    return error_response(kind, str(exc))


def handle_http_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Answer litestar's own errors (body too large, bad form, unknown route) in the same shape.

    Litestar reports an unreadable or invalid multipart body as a 400; to the API that is a
    bad parameter, so it becomes a 422 like a missing `image` field.
    """
    if not isinstance(exc, HTTPException) or exc.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        return handle_unexpected_error(request, exc)

    if isinstance(exc, RequestEntityTooLarge):
        kind = PHOTO_TOO_LARGE
    elif isinstance(exc, NotFoundException):
        kind = NOT_FOUND
    elif isinstance(exc, MethodNotAllowedException):
        kind = METHOD_NOT_ALLOWED
    else:
        kind = INVALID_PARAMETERS
    _log_rejected(request, kind)
    return error_response(kind)


def handle_unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Log the exception with its traceback and answer a 500 that reveals nothing of it."""
    logger.error(
        "request failed",
        exc_info=exc,
        extra={"method": request.method, "path": request.url.path, "error": type(exc).__name__},
    )
    return error_response(INTERNAL_ERROR)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    MemberlensError: handle_domain_error,
    HTTPException: handle_http_error,
    Exception: handle_unexpected_error,
}


def _log_rejected(request: Request[Any, Any, Any], kind: ErrorKind) -> None:
    logger.info(
        "request rejected",
        extra={
            "method": request.method,
            "path": request.url.path,
            "status": kind.status,
            "code": kind.code,
        },
    )
