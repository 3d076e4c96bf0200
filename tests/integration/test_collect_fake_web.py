"""Collect and check against a fake image search and image host on 127.0.0.1.

The fake web serves real photos from ../shared/datasets and the ways the web goes wrong: 404,
500, slow reads, a redirect loop, a redirect to a non-http scheme, HTML served as image/jpeg,
a truncated JPEG, an 80-megapixel image, an animated GIF, one photo at two URLs and 50 MB
bodies. Nothing is sent to any host but 127.0.0.1.
"""

import contextlib
import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from data_tools.check import QUARANTINE_DIR, CheckOptions, check_collection
from data_tools.collect import CollectOptions, collect
from data_tools.collect_journal import ATTEMPTS_FILE, PARTIAL_DIR, read_provenance
from data_tools.fetch import DownloadLimits
from data_tools.roster import parse_roster
from data_tools.search_backends import JsonSearchBackend

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_IMAGES = REPO_ROOT / ".." / "shared" / "datasets" / "bts-group-photos" / "images"
BIG_BODY_BYTES = 50 * 1024 * 1024
MAX_BYTES = 2 * 1024 * 1024
ROSTER = parse_roster(
    {
        "group": "BTS",
        "members": [
            {"slug": "jimin", "display_name": "Jimin", "queries": ["jimin"]},
            {"slug": "v", "display_name": "V", "queries": ["v"]},
        ],
    }
)
LIMITS = DownloadLimits(
    max_bytes=MAX_BYTES,
    max_pixels=50_000_000,
    connect_timeout_s=2.0,
    read_timeout_s=0.5,
    total_timeout_s=5.0,
    retries=1,
    backoff_s=0.05,
)

Route = Callable[[BaseHTTPRequestHandler], None]


class FakeWeb:
    """A threaded HTTP server on 127.0.0.1: a JSON image search plus an image host.

    It counts the requests and the body bytes it sends for each path.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.results: dict[str, list[str]] = {}
        self.requests: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.search_endpoint = self.base + "/search/images"

    def __enter__(self) -> "FakeWeb":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.base + path

    def count(self, path: str, sent_bytes: int = 0) -> None:
        with self._lock:
            self.bytes_sent[path] += sent_bytes

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        with self._lock:
            self.requests[parts.path] += 1
        if parts.path == "/search/images":
            query = parse_qs(parts.query)
            limit = int(query["max_results"][0])
            hits = [
                {"image": url, "url": url + ".html", "title": "t"}
                for url in self.results.get(query["query"][0], [])
            ]
            _send(handler, 200, json.dumps({"results": hits[:limit]}).encode(), "application/json")
            return
        route = self.routes.get(parts.path)
        if route is None:
            _send(handler, 404, b"not here", "text/plain")
            return
        route(handler)


def _handler_class(web: FakeWeb) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            # The client hanging up is what the byte cap and the timeouts are for.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                web.serve(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def photo_route(body: bytes, content_type: str = "image/jpeg", pause_s: float = 0.0) -> Route:
    """Serve bytes; with `pause_s`, stop halfway through the body for that long."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        half = len(body) // 2
        handler.wfile.write(body[:half])
        handler.wfile.flush()
        time.sleep(pause_s)
        handler.wfile.write(body[half:])

    return route


def status_route(status: int) -> Route:
    return lambda handler: _send(handler, status, b"error page", "text/html")


def redirect_route(location: str) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def slow_route(web: FakeWeb, body: bytes) -> Route:
    """Send the first bytes, then nothing for longer than the read timeout."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[:1000])
        handler.wfile.flush()
        web.stopping.wait(3.0)

    return route


def big_route(web: FakeWeb, path: str, *, declare_length: bool) -> Route:
    """Send 50 MB that start like a JPEG, with or without a Content-Length header."""
    block = b"\xff\xd8\xff\xe0" + bytes(1024 * 1024 - 4)

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        if declare_length:
            handler.send_header("Content-Length", str(BIG_BODY_BYTES))
        handler.end_headers()
        for _ in range(BIG_BODY_BYTES // len(block)):
            handler.wfile.write(block)
            web.count(path, len(block))

    return route


def flat_png(width: int, height: int) -> bytes:
    """A valid 1-bit grey PNG of one colour, built row by row so that it costs milliseconds."""
    row = b"\x00" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _encode(image: Image.Image, image_format: str = "JPEG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def _real_photos(count: int) -> list[bytes]:
    if not SHARED_IMAGES.is_dir():
        pytest.fail(f"the shared photos are missing at {SHARED_IMAGES}; tests read them in place")
    paths = sorted(path for path in SHARED_IMAGES.iterdir() if path.suffix.lower() == ".jpg")
    photos: list[bytes] = []
    for path in paths:
        with Image.open(path) as image:
            if min(image.size) >= 200 and image.format == "JPEG":
                photos.append(path.read_bytes())
        if len(photos) == count:
            return photos
    raise AssertionError("not enough real JPEG photos in the shared set")


@pytest.fixture
def web() -> Iterator[FakeWeb]:
    with FakeWeb() as fake_web:
        yield fake_web


def _collect(web: FakeWeb, out: Path, per_member: int) -> None:
    options = CollectOptions(per_member=per_member, workers=4, show_progress=False, limits=LIMITS)
    collect(ROSTER, out, JsonSearchBackend(web.search_endpoint, timeout_s=5), options)


def test_collect_and_check_cope_with_everything_the_web_does_wrong(
    web: FakeWeb, tmp_path: Path
) -> None:
    real = _real_photos(6)
    first = Image.open(io.BytesIO(real[0]))
    animated_frames = [
        first.resize((240, 180)).convert("P"),
        first.resize((240, 180)).rotate(5).convert("P"),
    ]
    animated = io.BytesIO()
    animated_frames[0].save(animated, "GIF", save_all=True, append_images=animated_frames[1:])
    urls = {
        "missing": web.add("/missing.jpg", status_route(404)),
        "error": web.add("/error.jpg", status_route(500)),
        "slow": web.add("/slow.jpg", slow_route(web, real[1])),
        "loop": web.add("/loop-a.jpg", redirect_route("/loop-b.jpg")),
        "to-ftp": web.add("/to-ftp.jpg", redirect_route("ftp://127.0.0.1/photo.jpg")),
        "html": web.add("/page.jpg", photo_route(b"<!DOCTYPE html><html>a page</html>")),
        "truncated": web.add("/truncated.jpg", photo_route(real[2][: len(real[2]) * 6 // 10])),
        "80-megapixels": web.add("/huge.png", photo_route(flat_png(10_000, 8_000), "image/png")),
        "animated": web.add("/animated.gif", photo_route(animated.getvalue(), "image/gif")),
        "big-declared": web.add("/big1.jpg", big_route(web, "/big1.jpg", declare_length=True)),
        "big-undeclared": web.add("/big2.jpg", big_route(web, "/big2.jpg", declare_length=False)),
        "same-a": web.add("/same-a.jpg", photo_route(real[0])),
        "redirected": web.add("/moved.jpg", redirect_route("/photo3.jpg")),
        "tiny": web.add("/tiny.jpg", photo_route(_encode(first.resize((80, 60))))),
    }
    web.add("/loop-b.jpg", redirect_route("/loop-a.jpg"))
    web.add("/photo3.jpg", photo_route(real[3]))
    v_urls = {
        "same-b": web.add("/same-b.jpg", photo_route(real[0])),
        "near-copy": web.add(
            "/near.jpg",
            photo_route(_encode(first.resize((first.width // 2, first.height // 2)), quality=60)),
        ),
        "photo4": web.add("/photo4.jpg", photo_route(real[4])),
        "photo5": web.add("/photo5.jpg", photo_route(real[5])),
    }
    web.results = {"jimin": list(urls.values()), "v": list(v_urls.values())}
    started = time.monotonic()

    _collect(web, tmp_path, per_member=20)

    attempts = {
        record["image_url"]: record
        for record in map(json.loads, (tmp_path / ATTEMPTS_FILE).read_text("utf-8").splitlines())
    }
    every_url = {**urls, **v_urls}
    reasons = {name: attempts[url]["reason"] for name, url in every_url.items() if url in attempts}
    assert reasons == {
        "missing": "http-404",
        "error": "http-500",
        "slow": "timeout",
        "loop": "redirect-loop",
        "to-ftp": "bad-scheme",
        "html": "not-an-image",
        "80-megapixels": "too-many-pixels",
        "big-declared": "too-many-bytes",
        "big-undeclared": "too-many-bytes",
        "same-b": "same-bytes",
    }
    assert web.requests["/error.jpg"] == 2  # retried once, as LIMITS say
    assert web.requests["/missing.jpg"] == 1
    # The byte cap stops reading early: the server could push only what the socket buffers
    # took before the client hung up, far less than the 50 MB body.
    assert web.bytes_sent["/big1.jpg"] < BIG_BODY_BYTES / 5
    assert web.bytes_sent["/big2.jpg"] < BIG_BODY_BYTES / 5
    provenance = read_provenance(tmp_path)
    saved = {record["image_url"]: record for record in provenance}
    assert set(saved) == {
        every_url[name]
        for name in (
            "truncated",
            "animated",
            "same-a",
            "redirected",
            "tiny",
            "near-copy",
            "photo4",
            "photo5",
        )
    }
    assert saved[urls["redirected"]]["final_url"] == web.base + "/photo3.jpg"
    assert saved[urls["same-a"]]["sha256"] == hashlib.sha256(real[0]).hexdigest()
    assert saved[urls["same-a"]]["page_url"] == urls["same-a"] + ".html"
    assert not (tmp_path / PARTIAL_DIR).exists()
    assert time.monotonic() - started < 20

    report = check_collection(tmp_path, CheckOptions(min_side_px=100))

    quarantined = {
        verdict["path"]: verdict["reason"] for verdict in report.verdicts if verdict["reason"]
    }
    path_of = {url: record["path"] for url, record in saved.items()}
    assert quarantined == {
        path_of[urls["truncated"]]: "truncated",
        path_of[urls["animated"]]: "animated",
        path_of[urls["tiny"]]: "too-small",
        path_of[v_urls["near-copy"]]: "duplicate",
    }
    for path, reason in quarantined.items():
        assert (tmp_path / QUARANTINE_DIR / reason / Path(path).relative_to("photos")).is_file()

    requests_before = Counter(web.requests)
    _collect(web, tmp_path, per_member=20)

    searches = requests_before["/search/images"]
    assert web.requests == requests_before + Counter({"/search/images": searches})


def test_collect_killed_halfway_finishes_on_rerun_without_duplicates_or_partial_files(
    web: FakeWeb, tmp_path: Path
) -> None:
    real = _real_photos(12)
    urls: dict[str, list[str]] = {"jimin": [], "v": []}
    for index, body in enumerate(real):
        member = "jimin" if index % 2 == 0 else "v"
        urls[member].append(web.add(f"/slow-photo{index}.jpg", photo_route(body, pause_s=0.3)))
    # The same photo at a second URL, so that a resumed run meets bytes it already has.
    urls["v"].insert(1, web.add("/again.jpg", photo_route(real[0], pause_s=0.3)))
    web.results = urls
    roster_path = tmp_path / "roster.yaml"
    roster_path.write_text(
        "group: BTS\nmembers:\n"
        "  - {slug: jimin, display_name: Jimin, queries: [jimin]}\n"
        "  - {slug: v, display_name: V, queries: [v]}\n",
        encoding="utf-8",
    )
    out = tmp_path / "collection"
    command = [
        sys.executable, "-m", "service.cli", "collect", str(roster_path),
        "--per-member", "5", "--out", str(out), "--search-endpoint", web.search_endpoint,
        "--workers", "2", "--no-progress", "--read-timeout-s", "2",
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    first = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(read_provenance(out)) < 3 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    saved_before_kill = {record["image_url"] for record in read_provenance(out)}
    assert 3 <= len(saved_before_kill) < 10, first.stderr.read().decode() if first.stderr else ""
    requests_before = Counter(web.requests)

    second = subprocess.run(
        command, cwd=REPO_ROOT, env=environment, capture_output=True, timeout=120
    )

    assert second.returncode == 0, second.stderr.decode()
    records = read_provenance(out)
    photos = sorted(path for path in (out / "photos").rglob("*") if path.is_file())
    assert sorted(out / record["path"] for record in records) == photos
    assert (
        len({hashlib.sha256(path.read_bytes()).hexdigest() for path in photos}) == len(photos) == 10
    )
    assert Counter(record["member"] for record in records) == {"jimin": 5, "v": 5}
    assert not (out / PARTIAL_DIR).exists()
    assert not [path for path in out.rglob("*") if path.suffix in (".part", ".tmp")]
    for url in saved_before_kill:
        path = urlsplit(url).path
        assert web.requests[path] == requests_before[path], f"{path} fetched again"
