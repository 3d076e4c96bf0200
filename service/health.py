"""Own the operator's routes: liveness, readiness with the model in use, and Prometheus metrics."""

from typing import Literal, TypedDict

from litestar import Response, get
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from model.results import ModelInfoDict
from service.errors import FORBIDDEN, UNAUTHORIZED, error_response_specs
from service.holder import ModelHolder
from service.metrics import ServiceMetrics

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class HealthDict(TypedDict):
    """The answer of `/healthz`."""

    status: Literal["ok"]


class ReadyDict(TypedDict):
    """The answer of `/readyz`: the model in use when ready, the reason when not.

    `last_reload_error` says why the latest new bundle was refused while the old one stayed.
    """

    status: Literal["ready", "not_ready"]
    model: ModelInfoDict | None
    reason: str | None
    last_reload_error: str | None


@get("/healthz", summary="Answer 200 while the process runs")
async def healthz() -> HealthDict:
    """Answer 200 while the process runs, whether or not a model is loaded."""
    return HealthDict(status="ok")


@get(
    "/readyz",
    summary="Answer 200 with the model in use, or 503 with why there is none",
    responses={
        HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
            data_container=ReadyDict, description="No model is loaded; `reason` says why."
        )
    },
)
async def readyz(holder: ModelHolder) -> Response[ReadyDict]:
    """Answer 200 with the bundle and thresholds in use, or 503 with why no model is loaded."""
    model_info = holder.model_info()
    if model_info is None:
        not_ready = ReadyDict(
            status="not_ready",
            model=None,
            reason=holder.not_loaded_reason,
            last_reload_error=holder.last_reload_error,
        )
        return Response(not_ready, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    ready = ReadyDict(
        status="ready", model=model_info, reason=None, last_reload_error=holder.last_reload_error
    )
    return Response(ready)


@get(
    "/metrics",
    summary="Metrics in the Prometheus text format",
    media_type=PROMETHEUS_TEXT,
    responses=error_response_specs((UNAUTHORIZED, FORBIDDEN)),
)
async def metrics_text(metrics: ServiceMetrics) -> Response[bytes]:
    """Answer every metric in the Prometheus text format."""
    return Response(metrics.render(), media_type=PROMETHEUS_TEXT)
