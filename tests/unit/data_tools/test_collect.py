"""Tests of collect: downloads through a mock transport, the journal, resume and the backends.

No request leaves the process: every URL is answered by an `httpx.MockTransport`.
"""

import hashlib
import io
import json
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from data_tools.collect import CollectOptions, collect
from data_tools.collect_journal import (
    ATTEMPTS_FILE,
    PARTIAL_DIR,
    PROVENANCE_FILE,
    CollectJournal,
    read_provenance,
)
from data_tools.errors import DatasetError
from data_tools.fetch import DownloadLimits, build_client
from data_tools.roster import parse_roster
from data_tools.search_backends import DdgsBackend, JsonSearchBackend, SearchHit

BASE = "http://127.0.0.1:9"
ROSTER = parse_roster(
    {
        "group": "G",
        "members": [
            {"slug": "ana", "display_name": "Ana", "queries": ["ana"]},
            {"slug": "bo", "display_name": "Bo", "queries": ["bo"]},
        ],
    }
)
FAST_LIMITS = DownloadLimits(max_bytes=200_000, max_pixels=1_000_000, retries=2, backoff_s=0.0)


def _photo_bytes(shade: int, image_format: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (shade, 255 - shade, (shade * 7) % 256)).save(buffer, image_format)
    return buffer.getvalue()


class FakeSearch:
    """A backend that answers each query with a fixed list of URLs."""

    name = "fake"

    def __init__(self, urls_by_query: dict[str, list[str]]) -> None:
        self.urls_by_query = urls_by_query
        self.queries: list[str] = []

    def search_images(self, query: str, max_results: int) -> list[SearchHit]:
        self.queries.append(query)
        urls = self.urls_by_query.get(query, [])[:max_results]
        return [SearchHit(image_url=url, page_url=f"{url}/page", title="t") for url in urls]


class FakeWeb:
    """A mock transport with a route per path; it counts the requests of each path."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[httpx.Request], httpx.Response]] = {}
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def photo(self, path: str, body: bytes, content_type: str = "image/jpeg") -> str:
        self.routes[path] = lambda request: httpx.Response(
            200, content=body, headers={"content-type": content_type}
        )
        return BASE + path

    def status(self, path: str, status: int) -> str:
        self.routes[path] = lambda request: httpx.Response(status, text="no")
        return BASE + path

    def redirect(self, path: str, location: str) -> str:
        self.routes[path] = lambda request: httpx.Response(302, headers={"location": location})
        return BASE + path

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests[request.url.path] += 1
        route = self.routes.get(request.url.path)
        return route(request) if route else httpx.Response(404)

    def client(self, limits: DownloadLimits = FAST_LIMITS) -> httpx.Client:
        client = build_client(limits, workers=4)
        client._transport = httpx.MockTransport(self.handle)
        return client


def _run(
    tmp_path: Path,
    web: FakeWeb,
    search: FakeSearch,
    per_member: int,
    retry_transient: bool = False,
) -> None:
    options = CollectOptions(
        per_member=per_member,
        workers=3,
        show_progress=False,
        limits=FAST_LIMITS,
        retry_transient=retry_transient,
    )
    with web.client() as client:
        collect(ROSTER, tmp_path, search, options, client=client)


def _attempts(folder: Path) -> dict[str, dict[str, object]]:
    lines = (folder / ATTEMPTS_FILE).read_text(encoding="utf-8").splitlines()
    return {record["image_url"]: record for record in map(json.loads, lines)}


def test_collect_saves_photos_under_their_sha_with_provenance(tmp_path: Path) -> None:
    web = FakeWeb()
    png = _photo_bytes(10, "PNG")
    urls = [web.photo("/a.jpg", png), web.photo("/b", _photo_bytes(90))]
    search = FakeSearch({"ana": urls, "bo": [web.photo("/c", _photo_bytes(200))]})

    _run(tmp_path, web, search, per_member=2)

    records = read_provenance(tmp_path)
    assert sorted(record["member"] for record in records) == ["ana", "ana", "bo"]
    first = next(record for record in records if record["image_url"] == urls[0])
    # The extension comes from the bytes: a PNG served at a .jpg URL is saved as .png.
    assert first["path"] == f"photos/ana/{hashlib.sha256(png).hexdigest()[:16]}.png"
    assert first["page_url"] == urls[0] + "/page"
    assert first["query"] == "ana"
    assert first["fetched_at"].endswith("+00:00")
    for record in records:
        saved = (tmp_path / record["path"]).read_bytes()
        assert hashlib.sha256(saved).hexdigest() == record["sha256"]
    assert not (tmp_path / PARTIAL_DIR).exists()


def test_collect_stops_at_per_member_even_with_parallel_workers(tmp_path: Path) -> None:
    web = FakeWeb()
    urls = [web.photo(f"/p{index}", _photo_bytes(index * 10)) for index in range(12)]
    search = FakeSearch({"ana": urls})

    _run(tmp_path, web, search, per_member=4)

    assert len(list((tmp_path / "photos" / "ana").iterdir())) == 4
    assert sum(web.requests.values()) == 4


def test_failures_are_recorded_with_a_reason_and_only_transient_ones_retried(
    tmp_path: Path,
) -> None:
    web = FakeWeb()
    html = b"<!doctype html><html><body>not a photo</body></html>"
    urls = {
        "missing": web.status("/missing", 404),
        "broken": web.status("/broken", 500),
        "loop": web.redirect("/loop-a", BASE + "/loop-b"),
        "ftp": web.redirect("/to-ftp", "ftp://127.0.0.1/photo.jpg"),
        "file": "file:///etc/hostname",
        "html": web.photo("/fake.jpg", html),
        "huge": web.photo("/huge.jpg", b"\xff\xd8\xff" + bytes(300_000)),
        "pixels": web.photo("/wide.png", _photo_bytes(5, "PNG", (1100, 1000)), "image/png"),
        "ok": web.photo("/fine.jpg", _photo_bytes(33)),
    }
    web.redirect("/loop-b", BASE + "/loop-a")
    search = FakeSearch({"ana": list(urls.values())})

    _run(tmp_path, web, search, per_member=len(urls))

    attempts = _attempts(tmp_path)
    reasons = {name: attempts[url]["reason"] for name, url in urls.items() if url in attempts}
    assert reasons == {
        "missing": "http-404",
        "broken": "http-500",
        "loop": "redirect-loop",
        "ftp": "bad-scheme",
        "file": "bad-scheme",
        "html": "not-an-image",
        "huge": "too-many-bytes",
        "pixels": "too-many-pixels",
    }
    assert attempts[urls["broken"]]["is_transient"] is True
    assert web.requests["/broken"] == 3
    assert web.requests["/missing"] == 1
    assert [record["image_url"] for record in read_provenance(tmp_path)] == [urls["ok"]]


def test_same_bytes_at_two_urls_are_saved_once(tmp_path: Path) -> None:
    web = FakeWeb()
    body = _photo_bytes(77)
    first, second = web.photo("/one.jpg", body), web.photo("/two.jpg", body)
    search = FakeSearch({"ana": [first], "bo": [second]})

    _run(tmp_path, web, search, per_member=1)

    assert len(read_provenance(tmp_path)) == 1
    duplicate = _attempts(tmp_path)[second]
    assert duplicate["outcome"] == "duplicate"
    assert duplicate["duplicate_of"] == read_provenance(tmp_path)[0]["path"]


def test_rerun_fetches_no_url_twice_and_retries_transient_ones_only_when_asked(
    tmp_path: Path,
) -> None:
    web = FakeWeb()
    urls = [
        web.photo("/1", _photo_bytes(1)),
        web.status("/gone", 404),
        web.status("/flaky", 503),
        web.photo("/2", _photo_bytes(2)),
    ]
    search = FakeSearch({"ana": urls})
    _run(tmp_path, web, search, per_member=5)
    first_counts = Counter(web.requests)

    _run(tmp_path, web, search, per_member=5)
    assert web.requests == first_counts

    _run(tmp_path, web, search, per_member=5, retry_transient=True)
    assert web.requests["/flaky"] == first_counts["/flaky"] * 2
    assert web.requests["/1"] == web.requests["/gone"] == 1


def test_photo_removed_after_collect_is_not_fetched_again_but_topped_up(tmp_path: Path) -> None:
    web = FakeWeb()
    urls = [web.photo(f"/{index}", _photo_bytes(index * 20)) for index in range(4)]
    search = FakeSearch({"ana": urls})
    _run(tmp_path, web, search, per_member=2)
    removed = tmp_path / read_provenance(tmp_path)[0]["path"]
    removed.unlink()

    _run(tmp_path, web, search, per_member=2)

    assert len(list((tmp_path / "photos" / "ana").iterdir())) == 2
    assert all(count == 1 for count in web.requests.values())
    assert sum(web.requests.values()) == 3


def test_open_finishes_a_move_cut_short_and_drops_leftovers(tmp_path: Path) -> None:
    body = _photo_bytes(3)
    sha256 = hashlib.sha256(body).hexdigest()
    record = {"member": "ana", "path": f"photos/ana/{sha256[:16]}.jpg", "image_url": "u"}
    record["sha256"] = sha256
    journal = CollectJournal(tmp_path)
    journal.partial_dir.mkdir(parents=True)
    journal.part_path("u").write_bytes(body)
    (journal.partial_dir / "other.part").write_bytes(b"half a download")
    # The record's line is whole; a second line was cut by a kill.
    (tmp_path / PROVENANCE_FILE).write_text(json.dumps(record) + '\n{"member": "a', "utf-8")

    reopened = CollectJournal.open(tmp_path)

    assert (tmp_path / record["path"]).read_bytes() == body
    assert reopened.saved_count("ana") == 1
    assert list(reopened.partial_dir.iterdir()) == []
    assert (tmp_path / PROVENANCE_FILE).read_text("utf-8") == json.dumps(record) + "\n"


def test_per_member_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="at least 1"):
        collect(ROSTER, tmp_path, FakeSearch({}), CollectOptions(per_member=0))


def _install_fake_ddgs(monkeypatch: pytest.MonkeyPatch, images: Callable[..., object]) -> None:
    module = types.ModuleType("ddgs")

    class DDGS:
        def __init__(self, timeout: int) -> None:
            self.timeout = timeout

        def images(self, query: str, **kwargs: object) -> object:
            return images(query, **kwargs)

    module.DDGS = DDGS  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ddgs", module)


def test_ddgs_backend_maps_results_to_hits(monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake_ddgs(
        monkeypatch,
        lambda query, **kwargs: [
            {"image": "https://127.0.0.1/a.jpg", "url": "https://127.0.0.1/p", "title": query},
            {"image": "", "url": "no image"},
            {"image": "https://127.0.0.1/b.jpg"},
        ],
    )

    hits = DdgsBackend(timeout_s=5).search_images("q", 10)

    assert hits == [
        SearchHit("https://127.0.0.1/a.jpg", "https://127.0.0.1/p", "q"),
        SearchHit("https://127.0.0.1/b.jpg", "", ""),
    ]


def test_ddgs_backend_that_hangs_fails_fast_with_an_offline_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _install_fake_ddgs(monkeypatch, lambda query, **kwargs: time.sleep(30))
    started = time.monotonic()

    with pytest.raises(DatasetError, match="offline"):
        DdgsBackend(timeout_s=0.3).search_images("q", 10)

    assert time.monotonic() - started < 2


def test_ddgs_backend_error_becomes_a_dataset_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(query: str, **kwargs: object) -> object:
        raise ConnectionError("no route to host")

    _install_fake_ddgs(monkeypatch, refuse)

    with pytest.raises(DatasetError, match="no route to host"):
        DdgsBackend(timeout_s=5).search_images("q", 10)


def test_json_backend_refuses_a_non_http_endpoint() -> None:
    with pytest.raises(DatasetError, match="http"):
        JsonSearchBackend("file:///tmp/search.json")


def test_a_malformed_line_inside_the_journal_is_skipped_but_not_cut(tmp_path: Path) -> None:
    lines = [
        json.dumps({"member": "ana", "image_url": "u1", "outcome": "failed"}),
        "{not json",
        json.dumps({"member": "ana", "image_url": "u2", "outcome": "failed"}),
    ]
    (tmp_path / ATTEMPTS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")

    journal = CollectJournal.open(tmp_path)

    assert [record["image_url"] for record in journal.attempts] == ["u1", "u2"]
    assert (tmp_path / ATTEMPTS_FILE).read_text("utf-8").count("\n") == 3
