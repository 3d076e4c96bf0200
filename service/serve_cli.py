"""Own `memberlens serve` (run the HTTP API with uvicorn) and `memberlens api-key`."""

import argparse
import logging
from pathlib import Path

import uvicorn
from litestar import Litestar

from service.app import create_app, effective_torch_threads
from service.auth import hash_api_key, new_api_key
from service.settings import Settings

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
Serve the HTTP API: POST /v1/identify (multipart file field `image`), POST /v1/identify/batch
(file fields `images`), GET /healthz, /readyz, /metrics, the OpenAPI schema at
/schema/openapi.json and a web page at /. The bundle is loaded and warmed at startup and
reloaded when its files change; if it is missing or fails to load, the service still starts
and answers 503 until a valid bundle appears. Options given here override the MEMBERLENS_*
environment variables.
"""

_EPILOG = """\
example:
  memberlens serve --bundle bundles/bts-2026-12-04 --port 8000
  curl -F image=@photo.jpg http://127.0.0.1:8000/v1/identify
"""


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the `serve` and `api-key` subcommands to the `memberlens` parser."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the HTTP API",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        metavar="PATH",
        help="model bundle folder (default: MEMBERLENS_BUNDLE)",
    )
    parser.add_argument(
        "--host", help="address to listen on (default: MEMBERLENS_HOST, else 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, help="TCP port to listen on (default: MEMBERLENS_PORT, else 8000)"
    )
    parser.set_defaults(handler=run_serve)

    key_parser = subparsers.add_parser(
        "api-key",
        help="make a new API key and the digest to configure",
        description="Print a new random API key and its digest. Give the key to the client and "
        "add the digest to MEMBERLENS_AUTH__API_KEY_HASHES (comma-separated).",
    )
    key_parser.set_defaults(handler=run_api_key)


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the API until interrupted, with the options in `args` over `settings`."""
    overrides = {
        name: value
        for name in ("bundle", "host", "port")
        if (value := getattr(args, name)) is not None
    }
    settings = settings.model_copy(update=overrides)
    serve_app(create_app(settings), settings)
    return 0


def serve_app(app: Litestar, settings: Settings) -> None:
    """Run `app` with uvicorn until SIGINT or SIGTERM, then let requests in flight finish."""
    bundle_dir = str(settings.bundle) if settings.bundle is not None else None
    logger.info(
        "starting server",
        extra={
            "host": settings.host,
            "port": settings.port,
            "bundle_dir": bundle_dir,
            "workers": settings.concurrency.workers,
            "queue_size": settings.concurrency.queue_size,
            "torch_threads": effective_torch_threads(settings),
            "api_keys": len(settings.auth.api_key_hashes),
        },
    )
    # log_config=None keeps the logging set up by the entry point. The access log is off
    # because it records client addresses; the app logs one line per request instead.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.concurrency.shutdown_timeout_s),
    )


def run_api_key(args: argparse.Namespace, settings: Settings) -> int:
    """Print a new API key and its digest (the product of this command)."""
    api_key = new_api_key()
    print(f"api key: {api_key}")
    print(f"digest:  {hash_api_key(api_key)}")
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {port}")
    return port
