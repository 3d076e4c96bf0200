"""Build the litestar app of the face path: identify the members in a photo, report health."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

import anyio
import anyio.to_thread
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from data_tools.errors import InvalidParameterError, MemberlensError, ModelNotLoadedError
from model.results import Identifier, IdentifyResult, ModelInfoDict
from service.errors import EXCEPTION_HANDLERS
from service.settings import Settings

logger = logging.getLogger(__name__)

IMAGE_FIELD = "image"
# Room for the multipart boundary and part headers around a photo of the largest allowed size;
# the photo's own byte limit is checked exactly when it is decoded.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# One inference at a time: torch already spreads one inference over the machine's cores, so a
# second concurrent one would only slow both down and double the peak memory.
MAX_CONCURRENT_INFERENCES = 1
# An upload needs one part; a cap keeps a request of thousands of tiny parts cheap to refuse.
MAX_FORM_PARTS = 8
_NO_BUNDLE_REASON = "no model bundle is configured; pass --bundle PATH or set MEMBERLENS_BUNDLE"


class HealthDict(TypedDict):
    """The answer of `/healthz`."""

    status: Literal["ok"]


class ReadyDict(TypedDict):
    """The answer of `/readyz`: the loaded model when ready, the reason when not."""

    status: Literal["ready", "not_ready"]
    model: ModelInfoDict | None
    reason: str | None


@dataclass
class ModelState:
    """Hold the identifier loaded at startup, or the reason there is none."""

    identifier: Identifier | None = None
    not_loaded_reason: str = "the model bundle has not been loaded yet"
    limiter: anyio.CapacityLimiter | None = None


def create_app(
    settings: Settings, load_identifier: Callable[[Path], Identifier] | None = None
) -> Litestar:
    """Build the app; the bundle in `settings.bundle` is loaded once, when the app starts.

    Args:
        settings: The service settings; `bundle` and `limits` are used here.
        load_identifier: Turns a bundle folder into an `Identifier`. Defaults to the inference
            pipeline of `model.pipeline`, imported only when the app starts. If it raises a
            `MemberlensError`, the app still serves: `/readyz` and `/v1/identify` answer 503.
    """
    loader = load_identifier or _pipeline_loader(settings)
    model_state = ModelState()

    async def load_model() -> None:
        await _load_model(model_state, settings.bundle, loader)

    def provide_model_state() -> ModelState:
        return model_state

    return Litestar(
        route_handlers=[identify, healthz, readyz],
        dependencies={"model_state": Provide(provide_model_state, sync_to_thread=False)},
        on_startup=[load_model],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.limits.max_upload_bytes + MULTIPART_OVERHEAD_BYTES,
        multipart_form_part_limit=MAX_FORM_PARTS,
        # Logging is configured once by the entry point; litestar must not replace it.
        logging_config=None,
        # The identify route reads its multipart body by hand (see `_read_photo`), so a
        # generated schema would show it without its body; DESIGN.md is the API's reference.
        openapi_config=None,
    )


@post("/v1/identify", status_code=HTTP_200_OK)
async def identify(request: Request[Any, Any, Any], model_state: ModelState) -> IdentifyResult:
    """Name the members in the photo uploaded as the multipart file field `image`."""
    identifier = model_state.identifier
    if identifier is None or model_state.limiter is None:
        raise ModelNotLoadedError(
            "No model is loaded, so no photo can be identified; GET /readyz gives the reason. "
            "Restart the service with a valid model bundle."
        )

    photo_bytes = await _read_photo(request)
    result = await anyio.to_thread.run_sync(
        identifier.identify, photo_bytes, limiter=model_state.limiter
    )

    logger.info(
        "photo identified",
        extra={
            "upload_bytes": len(photo_bytes),
            "faces": len(result["faces"]),
            "members": len(result["members"]),
            "total_ms": result["timings_ms"].get("total"),
        },
    )
    return result


@get("/healthz")
async def healthz() -> HealthDict:
    """Answer 200 while the process runs, whether or not a model is loaded."""
    return HealthDict(status="ok")


@get("/readyz")
async def readyz(model_state: ModelState) -> Response[ReadyDict]:
    """Answer 200 with the bundle and thresholds in use, or 503 with why no model is loaded."""
    identifier = model_state.identifier
    if identifier is None:
        not_ready = ReadyDict(status="not_ready", model=None, reason=model_state.not_loaded_reason)
        return Response(not_ready, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    return Response(ReadyDict(status="ready", model=identifier.model_info, reason=None))


def _pipeline_loader(settings: Settings) -> Callable[[Path], Identifier]:
    def load_pipeline_bundle(bundle_dir: Path) -> Identifier:
        # Imported here: the pipeline pulls in torch, which the health routes and tests do not need.
        from model.pipeline import load_pipeline

        identifier: Identifier = load_pipeline(
            bundle_dir,
            max_upload_bytes=settings.limits.max_upload_bytes,
            max_pixels=settings.limits.max_pixels,
            torch_threads=settings.torch_threads,
        )
        return identifier

    return load_pipeline_bundle


async def _load_model(
    model_state: ModelState,
    bundle_dir: Path | None,
    load_identifier: Callable[[Path], Identifier],
) -> None:
    model_state.limiter = anyio.CapacityLimiter(MAX_CONCURRENT_INFERENCES)
    if bundle_dir is None:
        model_state.not_loaded_reason = _NO_BUNDLE_REASON
        logger.warning("no bundle configured, serving without a model")
        return

    logger.info("loading bundle", extra={"bundle_dir": str(bundle_dir)})
    try:
        # In a thread, so that loading weights does not hold the event loop.
        identifier = await anyio.to_thread.run_sync(load_identifier, bundle_dir)
    except MemberlensError as err:
        model_state.not_loaded_reason = f"the model bundle at {bundle_dir} failed to load: {err}"
        logger.exception("bundle failed to load", extra={"bundle_dir": str(bundle_dir)})
        return

    model_state.identifier = identifier
    model_info = identifier.model_info
    logger.info(
        "bundle loaded",
        extra={
            "bundle_dir": str(bundle_dir),
            "bundle": model_info["bundle"],
            "thresholds": model_info["thresholds"],
        },
    )


async def _read_photo(request: Request[Any, Any, Any]) -> bytes:
    """Return the bytes of the single file in the field `image`; raise InvalidParameterError."""
    media_type, _ = request.content_type
    if media_type != RequestEncodingType.MULTI_PART:
        raise InvalidParameterError(
            "Expected a multipart/form-data body; send the photo as a file in the field `image`, "
            "for example: curl -F image=@photo.jpg"
        )

    try:
        form = await request.form()
    except UnicodeDecodeError as err:
        # Litestar decodes every part sent without a filename as text, so raw bytes sent that
        # way fail here rather than in the photo decoder.
        raise InvalidParameterError(
            "A form field holds binary data without a filename; send the photo as a file "
            "in the field `image` (a part with a filename), for example: curl -F image=@photo.jpg"
        ) from err

    try:
        uploads = form.getall(IMAGE_FIELD, [])
        if not uploads:
            raise InvalidParameterError(
                "The form has no field `image`; send the photo as a file in the field `image`."
            )
        if len(uploads) > 1 or not isinstance(uploads[0], UploadFile):
            raise InvalidParameterError(
                "The field `image` must hold exactly one file (a part with a filename); "
                "send one photo per request, for example: curl -F image=@photo.jpg"
            )
        photo_bytes: bytes = await uploads[0].read()
    finally:
        await form.close()
    return photo_bytes
