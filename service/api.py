"""Own the identify routes: one photo, or a batch of photos answered photo by photo."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, TypedDict

from litestar import Request, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from data_tools.errors import InvalidParameterError, MemberlensError
from model.results import Identifier, IdentifyResult
from service.errors import (
    INTERNAL_ERROR,
    ErrorBody,
    domain_error_kind,
    error_body,
    error_response_specs,
)
from service.holder import ModelHolder
from service.metrics import ServiceMetrics
from service.photo_types import check_photo_type
from service.pool import InferencePool
from service.settings import LimitSettings

logger = logging.getLogger(__name__)

IMAGE_FIELD = "image"
BATCH_FIELD = "images"
DEFAULT_TOP_K = 3
MAX_TOP_K = 50
MAX_MIN_FACE_SIZE_PX = 10_000

MinFaceSize = Annotated[
    int,
    Parameter(
        ge=0,
        le=MAX_MIN_FACE_SIZE_PX,
        description="Leave out faces whose box has a side shorter than this many pixels of the "
        "upright photo. Faces smaller than the detector's own minimum are never found.",
    ),
]
TopK = Annotated[
    int,
    Parameter(ge=0, le=MAX_TOP_K, description="How many candidates to list per face, best first."),
]
Landmarks = Annotated[
    bool, Parameter(description="Whether each face carries its five landmarks (x, y pixels).")
]


class BatchItemDict(TypedDict):
    """The answer for one photo of a batch: its result, or the error it alone got."""

    index: int
    filename: str
    status: int
    result: IdentifyResult | None
    error: ErrorBody | None


class BatchResultDict(TypedDict):
    """The answer for a batch, one item per photo in the order sent."""

    results: list[BatchItemDict]


@dataclass(frozen=True)
class IdentifyOptions:
    """The per-request options of the identify routes."""

    min_face_size_px: int
    top_k: int
    return_landmarks: bool


def identify_route_handlers(limits: LimitSettings) -> tuple[HTTPRouteHandler, HTTPRouteHandler]:
    """Build the single-photo and the batch route, with their bodies' limits in the schema."""
    photo = Schema(
        type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, max_length=limits.max_upload_bytes
    )
    single_body = Schema(
        type=OpenAPIType.OBJECT, properties={IMAGE_FIELD: photo}, required=[IMAGE_FIELD]
    )
    photos = Schema(
        type=OpenAPIType.ARRAY, items=photo, min_items=1, max_items=limits.max_batch_photos
    )
    batch_body = Schema(
        type=OpenAPIType.OBJECT, properties={BATCH_FIELD: photos}, required=[BATCH_FIELD]
    )
    single = post(
        "/identify",
        status_code=HTTP_200_OK,
        operation_class=_operation_with_body(
            _multipart_body(single_body, "One photo as the file field `image`.")
        ),
        responses=error_response_specs(),
        summary="Name the members in one photo",
    )(identify)
    batch = post(
        "/identify/batch",
        status_code=HTTP_200_OK,
        operation_class=_operation_with_body(
            _multipart_body(batch_body, "Photos as files, each in the field `images`.")
        ),
        responses=error_response_specs(),
        summary="Name the members in several photos, answering photo by photo",
    )(identify_batch)
    return single, batch


async def identify(
    request: Request[Any, Any, Any],
    holder: ModelHolder,
    pool: InferencePool,
    metrics: ServiceMetrics,
    min_face_size: MinFaceSize = 0,
    top_k: TopK = DEFAULT_TOP_K,
    landmarks: Landmarks = True,
) -> IdentifyResult:
    """Find every face in the photo sent as the multipart file field `image` and name it."""
    identifier = _admit(holder, pool)
    options = IdentifyOptions(min_face_size, top_k, landmarks)
    uploads = await _read_uploads(request, IMAGE_FIELD, max_count=1)
    photo_bytes = uploads[0][1]

    result = await pool.run(partial(_identify_one, identifier, photo_bytes, options))

    metrics.observe_result(result)
    _log_identified(len(photo_bytes), result)
    return result


async def identify_batch(
    request: Request[Any, Any, Any],
    holder: ModelHolder,
    pool: InferencePool,
    metrics: ServiceMetrics,
    limits: LimitSettings,
    min_face_size: MinFaceSize = 0,
    top_k: TopK = DEFAULT_TOP_K,
    landmarks: Landmarks = True,
) -> BatchResultDict:
    """Identify each photo sent in the field `images`; a bad photo gets its own error item."""
    identifier = _admit(holder, pool)
    options = IdentifyOptions(min_face_size, top_k, landmarks)
    uploads = await _read_uploads(request, BATCH_FIELD, max_count=limits.max_batch_photos)

    items = await pool.run(partial(_identify_each, identifier, uploads, options))

    for item in items:
        if item["result"] is not None:
            metrics.observe_result(item["result"])
            _log_identified(len(uploads[item["index"]][1]), item["result"])
    return BatchResultDict(results=items)


def _admit(holder: ModelHolder, pool: InferencePool) -> Identifier:
    """Return the loaded model; refuse with 503 before reading the upload if none or queue full."""
    identifier = holder.require()
    pool.check_capacity()
    return identifier


def _identify_one(
    identifier: Identifier, photo_bytes: bytes, options: IdentifyOptions
) -> IdentifyResult:
    check_photo_type(photo_bytes)
    return identifier.identify(
        photo_bytes,
        min_face_size_px=options.min_face_size_px,
        top_k=options.top_k,
        return_landmarks=options.return_landmarks,
    )


def _identify_each(
    identifier: Identifier, uploads: Sequence[tuple[str, bytes]], options: IdentifyOptions
) -> list[BatchItemDict]:
    """Identify photo after photo in one worker thread; an error stays with its own photo."""
    items: list[BatchItemDict] = []
    for index, (filename, photo_bytes) in enumerate(uploads):
        try:
            result = _identify_one(identifier, photo_bytes, options)
        except MemberlensError as err:
            kind = domain_error_kind(err)
            if kind is None:
                logger.error("batch photo failed", exc_info=err, extra={"index": index})
                body = error_body(INTERNAL_ERROR)
            else:
                body = error_body(kind, str(err))
            items.append(_error_item(index, filename, body))
            continue
        except Exception as err:
            # Broad on purpose: a bug met by one photo must not cost the others their answers.
            logger.error("batch photo failed", exc_info=err, extra={"index": index})
            items.append(_error_item(index, filename, error_body(INTERNAL_ERROR)))
            continue
        items.append(
            BatchItemDict(index=index, filename=filename, status=200, result=result, error=None)
        )
    return items


def _error_item(index: int, filename: str, body: ErrorBody) -> BatchItemDict:
    return BatchItemDict(
        index=index, filename=filename, status=body["status"], result=None, error=body
    )


async def _read_uploads(
    request: Request[Any, Any, Any], field: str, *, max_count: int
) -> list[tuple[str, bytes]]:
    """Return (filename, bytes) of each file in `field`; raise InvalidParameterError."""
    example = f"curl -F {field}=@photo.jpg"
    media_type, _ = request.content_type
    if media_type != RequestEncodingType.MULTI_PART:
        raise InvalidParameterError(
            f"Expected a multipart/form-data body; send each photo as a file in the field "
            f"`{field}`, for example: {example}"
        )
    try:
        form = await request.form()
    except UnicodeDecodeError as err:
        # Litestar decodes every part sent without a filename as text, so raw bytes sent that
        # way fail here rather than in the photo decoder.
        raise InvalidParameterError(
            f"A form field holds binary data without a filename; send each photo as a file in "
            f"the field `{field}` (a part with a filename), for example: {example}"
        ) from err

    try:
        parts = form.getall(field, [])
        if not parts:
            raise InvalidParameterError(
                f"The form has no field `{field}`; send each photo as a file in the field "
                f"`{field}`, for example: {example}"
            )
        if len(parts) > max_count:
            raise InvalidParameterError(
                f"Expected at most {max_count} photo(s) in the field `{field}`, but got "
                f"{len(parts)}; split them over several requests."
            )
        if not all(isinstance(part, UploadFile) for part in parts):
            raise InvalidParameterError(
                f"The field `{field}` must hold files (parts with a filename), not text; "
                f"for example: {example}"
            )
        return [(str(part.filename), await part.read()) for part in parts]
    finally:
        await form.close()


def _operation_with_body(request_body: RequestBody) -> type[Operation]:
    """Return an Operation class that shows `request_body`, which the route reads by hand."""

    @dataclass
    class MultipartOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = request_body

    return MultipartOperation


def _multipart_body(schema: Schema, description: str) -> RequestBody:
    return RequestBody(
        content={RequestEncodingType.MULTI_PART.value: OpenAPIMediaType(schema=schema)},
        description=description,
        required=True,
    )


def _log_identified(upload_bytes: int, result: IdentifyResult) -> None:
    logger.info(
        "photo identified",
        extra={
            "upload_bytes": upload_bytes,
            "faces": len(result["faces"]),
            "members": len(result["members"]),
            "bundle": result["model"]["bundle"],
            "total_ms": result["timings_ms"].get("total"),
        },
    )
