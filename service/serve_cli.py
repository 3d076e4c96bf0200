"""Own `memberlens serve`: run the HTTP API with uvicorn on one model bundle."""

import argparse
import logging
from pathlib import Path

import uvicorn

from service.app import create_app
from service.settings import Settings

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
Serve the HTTP API: POST /v1/identify (multipart file field `image`), GET /healthz,
GET /readyz. The bundle is loaded once at startup; if it is missing or fails to load,
the service still starts and answers 503 until it is restarted with a valid bundle.
Options given here override the MEMBERLENS_* environment variables.
"""

_EPILOG = """\
example:
  memberlens serve --bundle bundles/bts-2026-12-04 --port 8000
  curl -F image=@photo.jpg http://127.0.0.1:8000/v1/identify
"""


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the `serve` subcommand to the `memberlens` parser."""
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


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the API until interrupted, with the options in `args` over `settings`."""
    overrides = {
        name: value
        for name in ("bundle", "host", "port")
        if (value := getattr(args, name)) is not None
    }
    settings = settings.model_copy(update=overrides)

    app = create_app(settings)
    bundle_dir = str(settings.bundle) if settings.bundle is not None else None
    logger.info(
        "starting server",
        extra={"host": settings.host, "port": settings.port, "bundle_dir": bundle_dir},
    )
    # log_config=None keeps the logging set up by the entry point. The access log is off
    # because it records client addresses; the app logs one line per identified photo instead.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {port}")
    return port
