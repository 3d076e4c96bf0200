"""Find photo URLs for a query: the image-search interface, the ddgs backend, a JSON endpoint."""

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from data_tools.errors import DatasetError

logger = logging.getLogger(__name__)

DEFAULT_SEARCH_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class SearchHit:
    """One image search result: where the photo is, and the page that shows it."""

    image_url: str
    page_url: str
    title: str


class ImageSearchBackend(Protocol):
    """Anything that turns a text query into image search results."""

    name: str

    def search_images(self, query: str, max_results: int) -> list[SearchHit]:
        """Return up to `max_results` hits for `query`, best first.

        Raises:
            DatasetError: the search could not be made (offline, refused, malformed answer).
        """
        ...


class DdgsBackend:
    """Search the web's image engines through the `ddgs` package.

    `ddgs` makes its own requests to public search engines; with no network they fail, and
    this backend then raises at once, or at the latest after `timeout_s`, never hangs.
    """

    name = "ddgs"

    def __init__(
        self,
        timeout_s: float = DEFAULT_SEARCH_TIMEOUT_S,
        region: str = "us-en",
        safesearch: str = "moderate",
    ) -> None:
        """Configure the search; nothing is imported or contacted until the first query."""
        self.timeout_s = timeout_s
        self.region = region
        self.safesearch = safesearch

    def search_images(self, query: str, max_results: int) -> list[SearchHit]:
        """Return up to `max_results` image hits for `query` from ddgs.

        Raises:
            DatasetError: ddgs is not installed, the search failed, or it took longer than
                `timeout_s` (which is what an offline machine usually shows).
        """
        try:
            from ddgs import DDGS  # imported here: it is only needed when searching the web
        except ImportError as err:
            raise DatasetError(
                "the ddgs backend needs the 'ddgs' package; install it, or pass "
                "--search-endpoint to use a JSON search endpoint instead"
            ) from err

        per_engine_timeout_s = max(1, int(self.timeout_s / 2))

        def run_search() -> list[dict[str, Any]]:
            engine = DDGS(timeout=per_engine_timeout_s)
            return engine.images(
                query,
                region=self.region,
                safesearch=self.safesearch,
                max_results=max_results,
            )

        raw_hits = _call_with_deadline(run_search, self.timeout_s, query)
        return _parse_hits(raw_hits, max_results, source="ddgs")


class JsonSearchBackend:
    """Search through an HTTP endpoint that answers GET `?query=Q&max_results=N` with JSON.

    The answer is `{"results": [{"image": URL, "url": PAGE, "title": TEXT}, ...]}`, the shape
    of ddgs's own API server, so a self-hosted ddgs server or a test's fake engine plugs in.
    """

    name = "json"

    def __init__(self, endpoint: str, timeout_s: float = DEFAULT_SEARCH_TIMEOUT_S) -> None:
        """Check the endpoint URL; nothing is contacted until the first query.

        Raises:
            DatasetError: the endpoint is not an http(s) URL.
        """
        if urlsplit(endpoint).scheme not in ("http", "https"):
            raise DatasetError(f"search endpoint must be an http(s) URL, got {endpoint!r}")
        self.endpoint = endpoint
        self.timeout_s = timeout_s

    def search_images(self, query: str, max_results: int) -> list[SearchHit]:
        """Return up to `max_results` hits for `query` from the endpoint.

        Raises:
            DatasetError: the endpoint is unreachable, answers with an error status, or its
                answer is not the expected JSON.
        """
        params = {"query": query, "max_results": str(max_results)}
        try:
            response = httpx.get(
                self.endpoint, params=params, timeout=self.timeout_s, follow_redirects=False
            )
        except httpx.HTTPError as err:
            raise DatasetError(
                f"image search at {self.endpoint} failed: {err!r}; is the endpoint running?"
            ) from err
        if response.status_code != 200:
            raise DatasetError(
                f"image search at {self.endpoint} answered HTTP {response.status_code}, "
                "expected 200"
            )
        try:
            document = response.json()
        except ValueError as err:
            raise DatasetError(f"image search at {self.endpoint} did not answer JSON") from err
        if not isinstance(document, Mapping) or not isinstance(document.get("results"), list):
            raise DatasetError(
                f"image search at {self.endpoint} answered JSON without a 'results' list"
            )
        return _parse_hits(document["results"], max_results, source=self.endpoint)


def _call_with_deadline(
    search: Callable[[], list[dict[str, Any]]], timeout_s: float, query: str
) -> list[dict[str, Any]]:
    # A daemon thread, not an executor: a search stuck on a dead network must not keep the
    # process alive at exit, and the caller must get its answer after `timeout_s` at most.
    answers: queue.Queue[tuple[list[dict[str, Any]] | None, BaseException | None]] = queue.Queue(
        maxsize=1
    )

    def run() -> None:
        try:
            answers.put((search(), None))
        except Exception as err:
            answers.put((None, err))

    threading.Thread(target=run, name="image-search", daemon=True).start()
    try:
        raw_hits, error = answers.get(timeout=timeout_s)
    except queue.Empty:
        raise DatasetError(
            f"image search for {query!r} gave no answer within {timeout_s:.0f} s; "
            "is this machine offline? Use --search-endpoint for a local search service"
        ) from None
    if error is not None:
        raise DatasetError(
            f"image search for {query!r} failed: {error}; is this machine offline?"
        ) from error
    return raw_hits or []


def _parse_hits(raw_hits: Sequence[object], max_results: int, source: str) -> list[SearchHit]:
    hits: list[SearchHit] = []
    for raw in raw_hits:
        if not isinstance(raw, Mapping):
            logger.debug("search hit skipped", extra={"source": source, "reason": "not a map"})
            continue
        image_url = str(raw.get("image") or "")
        if not image_url:
            continue
        hits.append(
            SearchHit(
                image_url=image_url,
                page_url=str(raw.get("url") or ""),
                title=str(raw.get("title") or ""),
            )
        )
    return hits[:max_results]
