"""Download one photo URL safely: http(s) only, checked redirects, timeouts, retries, byte cap."""

import hashlib
import logging
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("http", "https")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
TRANSIENT_STATUSES = (408, 425, 429, 500, 502, 503, 504)
# Formats a training photo may come in; the extension a saved photo gets is derived from the
# bytes, never from the URL or the Content-Type header.
EXTENSION_BY_FORMAT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
USER_AGENT = "memberlens-collect/0.1"
_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class DownloadLimits:
    """What one download may cost: bytes, pixels, time, attempts and redirects."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    total_timeout_s: float = 60.0
    retries: int = 2
    backoff_s: float = 0.5
    max_redirects: int = 5


@dataclass(frozen=True)
class FetchOutcome:
    """What came of fetching one URL; on success the photo waits in `part_path`.

    `reason` is a short stable word for a failure (`http-404`, `not-an-image`, ...), and
    `is_transient` says whether trying again later might succeed.
    """

    url: str
    is_saved: bool
    reason: str = ""
    detail: str = ""
    is_transient: bool = False
    final_url: str = ""
    part_path: Path | None = None
    sha256: str = ""
    size_bytes: int = 0
    image_format: str = ""
    width: int = 0
    height: int = 0


def build_client(limits: DownloadLimits, workers: int) -> httpx.Client:
    """Return an HTTP client for downloads: no automatic redirects, per-phase timeouts."""
    timeout = httpx.Timeout(
        connect=limits.connect_timeout_s,
        read=limits.read_timeout_s,
        write=limits.read_timeout_s,
        pool=limits.total_timeout_s,
    )
    return httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
        # identity: a photo is already compressed, and an uncompressed body lets the byte cap
        # count what crosses the wire.
        headers={"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"},
    )


def fetch_photo(
    client: httpx.Client, url: str, part_path: Path, limits: DownloadLimits
) -> FetchOutcome:
    """Download `url` to `part_path` and check that the bytes are a photo of allowed size.

    Transient failures (timeouts, dropped connections, 5xx, 429) are retried with exponential
    backoff and jitter; permanent ones (4xx, bad scheme, redirect loop, not an image, too
    large) are not. A failed download leaves no file behind.

    Args:
        client: a client from `build_client`.
        url: the photo's URL, as the search gave it.
        part_path: where the bytes go while they are checked; the caller moves them to the
            final name.
        limits: byte, pixel, time, retry and redirect limits.
    """
    outcome = FetchOutcome(url=url, is_saved=False, reason="not-tried")
    for attempt in range(limits.retries + 1):
        if attempt:
            delay_s = limits.backoff_s * 2 ** (attempt - 1) * (1 + random.random())
            logger.debug("download retried", extra={"url": url, "attempt": attempt})
            time.sleep(delay_s)
        outcome = _fetch_once(client, url, part_path, limits)
        if outcome.is_saved or not outcome.is_transient:
            break
    if not outcome.is_saved:
        part_path.unlink(missing_ok=True)
        return outcome
    return _check_photo_bytes(outcome, limits)


def _fetch_once(
    client: httpx.Client, url: str, part_path: Path, limits: DownloadLimits
) -> FetchOutcome:
    visited: set[str] = set()
    current = url
    deadline = time.monotonic() + limits.total_timeout_s
    try:
        for _hop in range(limits.max_redirects + 1):
            scheme = urlsplit(current).scheme.lower()
            if scheme not in ALLOWED_SCHEMES:
                return _failure(url, "bad-scheme", f"scheme {scheme!r} at {current}")
            if current in visited:
                return _failure(url, "redirect-loop", f"came back to {current}")
            visited.add(current)
            with client.stream("GET", current) as response:
                if response.status_code in REDIRECT_STATUSES:
                    location = response.headers.get("location", "")
                    if not location:
                        return _failure(url, "bad-redirect", "redirect without Location")
                    current = urljoin(current, location)
                    continue
                return _receive_body(response, url, current, part_path, limits, deadline)
        return _failure(url, "too-many-redirects", f"more than {limits.max_redirects}")
    except httpx.TimeoutException as err:
        return _failure(url, "timeout", type(err).__name__, is_transient=True)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as err:
        return _failure(url, "bad-url", str(err))
    except (httpx.TransportError, httpx.DecodingError) as err:
        return _failure(url, "network", type(err).__name__, is_transient=True)


def _receive_body(
    response: httpx.Response,
    url: str,
    final_url: str,
    part_path: Path,
    limits: DownloadLimits,
    deadline: float,
) -> FetchOutcome:
    status = response.status_code
    if status != 200:
        return _failure(url, f"http-{status}", final_url, is_transient=status in TRANSIENT_STATUSES)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        return _failure(url, "too-many-bytes", f"Content-Length {declared}")

    digest = hashlib.sha256()
    size_bytes = 0
    with part_path.open("wb") as part:
        for chunk in response.iter_bytes(_CHUNK_BYTES):
            size_bytes += len(chunk)
            if size_bytes > limits.max_bytes:
                return _failure(url, "too-many-bytes", f"more than {limits.max_bytes} bytes")
            if time.monotonic() > deadline:
                return _failure(url, "timeout", "total time exceeded", is_transient=True)
            digest.update(chunk)
            part.write(chunk)
        part.flush()
        os.fsync(part.fileno())
    return FetchOutcome(
        url=url,
        is_saved=True,
        final_url=final_url,
        part_path=part_path,
        sha256=digest.hexdigest(),
        size_bytes=size_bytes,
    )


def _check_photo_bytes(outcome: FetchOutcome, limits: DownloadLimits) -> FetchOutcome:
    """Identify the format from the bytes and refuse what is not a photo or has too many pixels."""
    assert outcome.part_path is not None  # set on every saved outcome
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(outcome.part_path) as image:
                image_format = image.format or ""
                width, height = image.size
    except Image.DecompressionBombError:
        return _discard(outcome, "too-many-pixels", "past Pillow's decompression bomb limit")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        return _discard(outcome, "not-an-image", str(err))
    if image_format not in EXTENSION_BY_FORMAT:
        return _discard(outcome, "unsupported-format", image_format)
    if width * height > limits.max_pixels:
        return _discard(outcome, "too-many-pixels", f"{width}x{height}")
    return FetchOutcome(
        url=outcome.url,
        is_saved=True,
        final_url=outcome.final_url,
        part_path=outcome.part_path,
        sha256=outcome.sha256,
        size_bytes=outcome.size_bytes,
        image_format=image_format,
        width=width,
        height=height,
    )


def _discard(outcome: FetchOutcome, reason: str, detail: str) -> FetchOutcome:
    if outcome.part_path is not None:
        outcome.part_path.unlink(missing_ok=True)
    return _failure(outcome.url, reason, detail)


def _failure(url: str, reason: str, detail: str, *, is_transient: bool = False) -> FetchOutcome:
    return FetchOutcome(
        url=url, is_saved=False, reason=reason, detail=detail, is_transient=is_transient
    )
