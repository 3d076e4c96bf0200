"""Build the litestar app: the identify API, the operator's routes and the web page."""

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pillow_heif
from litestar import Litestar, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from model.results import Identifier
from service.api import identify_route_handlers
from service.auth import API_KEY_HEADER, ApiKeyGuard
from service.errors import EXCEPTION_HANDLERS
from service.health import healthz, metrics_text, readyz
from service.holder import ModelHolder
from service.metrics import RequestObserver, ServiceMetrics, unrouted_observer
from service.page import page_routes
from service.pool import InferencePool
from service.settings import Settings

logger = logging.getLogger(__name__)

API_VERSION = "1"
SCHEMA_PATH = "/schema"
# Room for the multipart boundary and part headers around photos of the largest allowed size;
# each photo's own byte limit is checked exactly when it is decoded.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# Parts beyond the photos that a form may carry (stray fields are ignored, not refused).
EXTRA_FORM_PARTS = 8
_API_KEY_SCHEME = "apiKey"


def create_app(
    settings: Settings, load_identifier: Callable[[Path], Identifier] | None = None
) -> Litestar:
    """Build the app; the bundle in `settings.bundle` is loaded and warmed when the app starts.

    Args:
        settings: The service settings.
        load_identifier: Turns a bundle folder into an `Identifier`. Defaults to the inference
            pipeline of `model.pipeline`, imported only when the app starts. If it raises, the
            app still serves: `/readyz` and the identify routes answer 503 until a bundle loads.
    """
    # HEIC/HEIF photos (phones' default) decode through Pillow once this plugin is registered.
    pillow_heif.register_heif_opener()
    loader = load_identifier or _pipeline_loader(settings)
    holder = ModelHolder(settings.bundle, loader, warm_up=settings.warm_up)
    concurrency = settings.concurrency
    pool = InferencePool(
        workers=concurrency.workers,
        queue_size=concurrency.queue_size,
        retry_after_s=concurrency.retry_after_s,
    )
    metrics = ServiceMetrics(holder, pool)

    return Litestar(
        route_handlers=[*_api_routers(settings), healthz, readyz, *page_routes()],
        dependencies={
            "holder": Provide(lambda: holder, sync_to_thread=False),
            "pool": Provide(lambda: pool, sync_to_thread=False),
            "metrics": Provide(lambda: metrics, sync_to_thread=False),
            "limits": Provide(lambda: settings.limits, sync_to_thread=False),
        },
        lifespan=[_lifespan(settings, holder, pool)],
        middleware=[RequestObserver(metrics)],
        before_send=[unrouted_observer(metrics)],
        exception_handlers=EXCEPTION_HANDLERS,
        multipart_form_part_limit=settings.limits.max_batch_photos + EXTRA_FORM_PARTS,
        # Logging is configured once by the entry point; litestar must not replace it.
        logging_config=None,
        openapi_config=_openapi_config(settings),
    )


def effective_torch_threads(settings: Settings) -> int:
    """Return the torch threads per inference: the setting, else the cores shared by workers.

    One core is left to the event loop, which reads uploads while inference runs. torch's
    threads wait for each other at every operation, so one of them losing its core stalls
    them all: on a 2-core machine with another job running, `benchmarks/load.py` (8 clients)
    measured 0.29 photos/s with two torch threads and 2.1 photos/s with one.
    """
    if settings.torch_threads > 0:
        return settings.torch_threads
    cores = len(os.sched_getaffinity(0))
    return max(1, (cores - 1) // settings.concurrency.workers)


def _api_routers(settings: Settings) -> list[Router]:
    guard = ApiKeyGuard(settings.auth)
    identify, identify_batch = identify_route_handlers(settings.limits)
    security: list[dict[str, list[str]]] | None = (
        [{_API_KEY_SCHEME: []}] if guard.is_enabled else None
    )
    limits = settings.limits
    single = Router(
        path="/v1",
        route_handlers=[identify],
        guards=[guard],
        security=security,
        request_max_body_size=limits.max_upload_bytes + MULTIPART_OVERHEAD_BYTES,
    )
    batch = Router(
        path="/v1",
        route_handlers=[identify_batch],
        guards=[guard],
        security=security,
        request_max_body_size=limits.max_batch_bytes + MULTIPART_OVERHEAD_BYTES,
    )
    operator = Router(
        path="/",
        route_handlers=[metrics_text],
        guards=[guard],
        security=security,
    )
    return [single, batch, operator]


def _openapi_config(settings: Settings) -> OpenAPIConfig:
    components = Components()
    if settings.auth.api_key_hashes:
        scheme = SecurityScheme(type="apiKey", name=API_KEY_HEADER, security_scheme_in="header")
        components = Components(security_schemes={_API_KEY_SCHEME: scheme})
    return OpenAPIConfig(
        title="memberlens",
        version=API_VERSION,
        description="Name the members of a group in a photo, with a box around each face.",
        path=SCHEMA_PATH,
        render_plugins=[JsonRenderPlugin()],
        components=components,
    )


def _lifespan(
    settings: Settings, holder: ModelHolder, pool: InferencePool
) -> Callable[[Litestar], Any]:
    @asynccontextmanager
    async def run_background_work(_: Litestar) -> AsyncIterator[None]:
        await holder.load()
        async with anyio.create_task_group() as task_group:
            if settings.reload.interval_s > 0 and settings.bundle is not None:
                task_group.start_soon(holder.watch, settings.reload.interval_s)
            try:
                yield
            finally:
                task_group.cancel_scope.cancel()
        # The server stops taking requests before this point; wait for the ones in flight.
        await pool.drain(settings.concurrency.shutdown_timeout_s)
        pool.close()

    return run_background_work


def _pipeline_loader(settings: Settings) -> Callable[[Path], Identifier]:
    torch_threads = effective_torch_threads(settings)

    def load_pipeline_bundle(bundle_dir: Path) -> Identifier:
        # Imported here: the pipeline pulls in torch, which the health routes and tests do not need.
        from model.pipeline import load_pipeline

        identifier: Identifier = load_pipeline(
            bundle_dir,
            max_upload_bytes=settings.limits.max_upload_bytes,
            max_pixels=settings.limits.max_pixels,
            torch_threads=torch_threads,
        )
        return identifier

    return load_pipeline_bundle
