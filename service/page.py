"""Own the web page at `/`: choose or drop a photo and see the members named on it."""

from pathlib import Path

from litestar import Response, Router, get
from litestar.enums import MediaType
from litestar.handlers import HTTPRouteHandler
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The page loads nothing from elsewhere; photos are shown from blob: URLs made in the browser.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@get("/", include_in_schema=False, media_type=MediaType.HTML)
async def page() -> Response[bytes]:
    """Answer the web page."""
    html = (STATIC_DIR / "index.html").read_bytes()
    return Response(html, media_type=MediaType.HTML, headers=_PAGE_HEADERS)


def page_routes() -> list[HTTPRouteHandler | Router]:
    """Return the page and the router of its scripts and styles under `/static`."""
    static: Router = create_static_files_router(
        path="/static", directories=[STATIC_DIR], include_in_schema=False
    )
    return [page, static]
