"""Count requests and time the pipeline for `/metrics`, and give every request an id in the logs."""

import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from model.results import IdentifyResult
from service.holder import ModelHolder
from service.logs import request_id_var
from service.pool import InferencePool

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED_ROUTE = "unmatched"
# Routes that probes and scrapers call all day: logged at DEBUG, not INFO.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
_REQUEST_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_STEP_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_FACES_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 30, 50, 100)
# A client's own request id is kept only when it is short and plain, so it cannot forge log lines.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ServiceMetrics:
    """The service's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self, holder: ModelHolder, pool: InferencePool) -> None:
        """Create the metrics; the bundle and queue gauges are read from `holder` and `pool`."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "memberlens_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "memberlens_http_request_duration_seconds",
            "Time from receiving a request to starting its answer, by route template.",
            ["route"],
            buckets=_REQUEST_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "memberlens_pipeline_step_duration_seconds",
            "Time spent in each step of the pipeline per photo "
            "(decode, detect, align, faces, image, total).",
            ["step"],
            buckets=_STEP_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.faces_per_photo = Histogram(
            "memberlens_faces_per_photo",
            "Faces found per identified photo.",
            buckets=_FACES_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(holder, pool))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.request_seconds.labels(route=route).observe(seconds)

    def observe_result(self, result: IdentifyResult) -> None:
        """Record the step timings and the face count of one identified photo."""
        for step, milliseconds in result["timings_ms"].items():
            self.step_seconds.labels(step=step).observe(milliseconds / 1000)
        self.faces_per_photo.observe(len(result["faces"]))

    def render(self) -> bytes:
        """Return every metric in the Prometheus text format."""
        return generate_latest(self.registry)


class RequestObserver(ASGIMiddleware):
    """Give each routed request an id (logs and `X-Request-ID`), then count and time its answer."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: ServiceMetrics) -> None:
        """Record into `metrics`."""
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Serve the request with its id set, and record its status and latency."""
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        route = str(scope.get("path_template") or UNMATCHED_ROUTE)
        method = cast("HTTPScope", scope)["method"]
        started = time.perf_counter()
        status = 500
        elapsed_s: float | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, elapsed_s
            if message["type"] == "http.response.start":
                status = int(message["status"])
                elapsed_s = time.perf_counter() - started
                MutableScopeHeaders.from_message(message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await next_app(scope, receive, send_with_id)
        finally:
            seconds = elapsed_s if elapsed_s is not None else time.perf_counter() - started
            self.metrics.observe_request(route, method, status, seconds)
            level = logging.DEBUG if route in _QUIET_ROUTES else logging.INFO
            logger.log(
                level,
                "request answered",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
            request_id_var.reset(token)


def unrouted_observer(metrics: ServiceMetrics) -> Any:
    """Build a `before_send` hook that counts answers to requests no route matched (404, 405)."""

    async def observe_unrouted(message: Message, scope: Scope) -> None:
        # Routed requests are seen by RequestObserver; routing errors never reach it.
        if message["type"] != "http.response.start" or "route_handler" in scope:
            return
        MutableScopeHeaders.from_message(message)[REQUEST_ID_HEADER] = _request_id(scope)
        method = str(scope.get("method", ""))
        metrics.observe_request(UNMATCHED_ROUTE, method, int(message["status"]), 0.0)

    return observe_unrouted


class _StateCollector(Collector):
    """Report, at scrape time, the bundle in use, reloads and the inference queue."""

    def __init__(self, holder: ModelHolder, pool: InferencePool) -> None:
        self._holder = holder
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        bundle = GaugeMetricFamily(
            "memberlens_bundle_info",
            "The bundle and thresholds that answers use now (value 1); absent with no model.",
            labels=["bundle", "thresholds"],
        )
        model_info = self._holder.model_info()
        if model_info is not None:
            bundle.add_metric([model_info["bundle"], model_info["thresholds"]], 1)
        yield bundle
        yield GaugeMetricFamily(
            "memberlens_model_loaded",
            "1 while a model is loaded.",
            value=int(model_info is not None),
        )
        reloads = CounterMetricFamily(
            "memberlens_bundle_reloads", "Live bundle reloads, by outcome.", labels=["outcome"]
        )
        reloads.add_metric(["success"], self._holder.reloads_succeeded)
        reloads.add_metric(["failure"], self._holder.reloads_failed)
        yield reloads
        queue = GaugeMetricFamily(
            "memberlens_inference_queue", "Inferences running or waiting now.", labels=["state"]
        )
        queue.add_metric(["running"], self._pool.running)
        queue.add_metric(["waiting"], self._pool.waiting)
        yield queue
        yield CounterMetricFamily(
            "memberlens_inference_rejected",
            "Requests refused with 503 because the inference queue was full.",
            value=self._pool.rejected,
        )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            if _CLIENT_REQUEST_ID.match(text):
                return text
            break
    return uuid.uuid4().hex
