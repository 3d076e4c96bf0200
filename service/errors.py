"""Map every exception that reaches the HTTP edge to one JSON error body, in one place."""

import logging
from dataclasses import dataclass
from typing import Any, TypedDict

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ServiceUnavailableException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi import ResponseSpec
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
UNAUTHORIZED = ErrorKind(
    401,
    "unauthorized",
    "This service needs an API key; send it in the X-API-Key header.",
)
FORBIDDEN = ErrorKind(
    403,
    "forbidden",
    "The API key is not one this service takes; check the key, or ask its operator for one.",
)
NOT_FOUND = ErrorKind(
    404, "not_found", "No such route; the API is POST /v1/identify, its schema is at /schema."
)
METHOD_NOT_ALLOWED = ErrorKind(
    405, "method_not_allowed", "This route does not take that method; see /schema for the API."
)
PHOTO_TOO_LARGE = ErrorKind(
    413, "photo_too_large", "The upload is too large; send a smaller photo (fewer bytes or pixels)."
)
UNSUPPORTED_PHOTO_TYPE = ErrorKind(
    415,
    "unsupported_photo_type",
    "The file is not an image type we take; send a JPEG, PNG, WebP, GIF, BMP, TIFF or HEIC photo.",
)
INVALID_PARAMETERS = ErrorKind(
    422,
    "invalid_parameters",
    "Send one photo as a multipart/form-data file in the field `image`, "
    "for example: curl -F image=@photo.jpg http://HOST/v1/identify",
)
INTERNAL_ERROR = ErrorKind(
    500,
    "internal_error",
    "The server failed on this request; try again, and report it if it stays.",
)
MODEL_NOT_LOADED = ErrorKind(
    503,
    "model_not_loaded",
    "No model is loaded; check /readyz and start the service with a bundle.",
)
OVERLOADED = ErrorKind(
    503,
    "overloaded",
    "The service is busy with other photos; wait the seconds in Retry-After and send it again.",
)
# Every kind an API route can answer with, for the OpenAPI schema.
API_ERROR_KINDS = (
    INVALID_PHOTO,
    UNAUTHORIZED,
    FORBIDDEN,
    PHOTO_TOO_LARGE,
    UNSUPPORTED_PHOTO_TYPE,
    INVALID_PARAMETERS,
    INTERNAL_ERROR,
    MODEL_NOT_LOADED,
    OVERLOADED,
)


def error_response_specs(kinds: tuple[ErrorKind, ...] = API_ERROR_KINDS) -> dict[int, ResponseSpec]:
    """Describe the error answers of a route for the OpenAPI schema, one per status."""
    specs: dict[int, ResponseSpec] = {}
    for kind in kinds:
        described = specs.get(kind.status)
        description = (
            kind.message if described is None else f"{described.description} {kind.message}"
        )
        specs[kind.status] = ResponseSpec(data_container=ErrorBody, description=description)
    return specs


class ServiceOverloadedError(ServiceUnavailableException):
    """Raised at the edge when the inference queue is full; the answer carries Retry-After."""

    def __init__(self, retry_after_s: int) -> None:
        """Refuse a request, asking the client to come back after `retry_after_s` seconds."""
        super().__init__(headers={"Retry-After": str(retry_after_s)})
        self.retry_after_s = retry_after_s


class MissingApiKeyError(NotAuthorizedException):
    """Raised at the edge when API keys are required and the request sent none."""


class WrongApiKeyError(PermissionDeniedException):
    """Raised at the edge when the request sent an API key that is not configured."""


# Subclasses come before their bases: the first matching entry wins.
_DOMAIN_KINDS: tuple[tuple[type[MemberlensError], ErrorKind], ...] = (
    (InvalidPhotoError, INVALID_PHOTO),
    (PhotoTooLargeError, PHOTO_TOO_LARGE),
    (UnsupportedPhotoTypeError, UNSUPPORTED_PHOTO_TYPE),
    (InvalidParameterError, INVALID_PARAMETERS),
    (ModelNotLoadedError, MODEL_NOT_LOADED),
)
_HTTP_KINDS: tuple[tuple[type[HTTPException], ErrorKind], ...] = (
    (ServiceOverloadedError, OVERLOADED),
    (NotAuthorizedException, UNAUTHORIZED),
    (PermissionDeniedException, FORBIDDEN),
    (RequestEntityTooLarge, PHOTO_TOO_LARGE),
    (NotFoundException, NOT_FOUND),
    (MethodNotAllowedException, METHOD_NOT_ALLOWED),
)


def error_body(kind: ErrorKind, message: str | None = None) -> ErrorBody:
    """Build the JSON body of one kind of error, with `message` in place of the default."""
    return ErrorBody(code=kind.code, message=message or kind.message, status=kind.status)


def error_response(
    kind: ErrorKind, message: str | None = None, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    """Build the JSON response for one kind of error."""
    return Response(error_body(kind, message), status_code=kind.status, headers=headers)


def domain_error_kind(exc: MemberlensError) -> ErrorKind | None:
    """Return the kind of answer a domain error gets, or None when it is a fault of the server."""
    return next((kind for error_type, kind in _DOMAIN_KINDS if isinstance(exc, error_type)), None)


def handle_domain_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Answer a domain error with its status and the error's own message (it says how to fix it).

    A domain error with no entry here (a dataset or weights error, say) is a fault of the
    server, not of the request, so it becomes a 500 like any unexpected exception.
    """
    kind = domain_error_kind(exc) if isinstance(exc, MemberlensError) else None
    if kind is None:
        return handle_unexpected_error(request, exc)

    _log_rejected(request, kind)
    return error_response(kind, str(exc))


def handle_http_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Answer litestar's own errors (body too large, bad form, unknown route) in the same shape.

    Litestar reports an unreadable multipart body or a query parameter out of range as a 400;
    to the API that is a bad parameter, so it becomes a 422 like a missing `image` field.
    """
    if not isinstance(exc, HTTPException):
        return handle_unexpected_error(request, exc)
    kind = next((kind for error_type, kind in _HTTP_KINDS if isinstance(exc, error_type)), None)
    if kind is None and exc.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        return handle_unexpected_error(request, exc)

    headers = dict(exc.headers or {})
    message = None
    if kind is None:
        kind = INVALID_PARAMETERS
        message = _validation_message(exc) if isinstance(exc, ValidationException) else None
    elif isinstance(exc, MissingApiKeyError):
        message = exc.detail  # names the header this service reads the key from
    _log_rejected(request, kind)
    return error_response(kind, message, headers=headers or None)


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


def _validation_message(exc: ValidationException) -> str | None:
    """Say which parameter litestar refused and why, without echoing the value sent."""
    problems = exc.extra if isinstance(exc.extra, list) else []
    described = [
        f"{problem.get('key', 'parameter')}: {problem.get('message', 'invalid value')}"
        for problem in problems
        if isinstance(problem, dict)
    ]
    if not described:
        return None
    return (
        "Invalid parameters (" + "; ".join(described) + "); see /schema for each parameter's "
        "type and range."
    )


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
