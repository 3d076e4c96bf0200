"""Send the corpus of bad and odd uploads to the live server on 127.0.0.1 and check each answer.

Each bad input must get its exact 4xx and error code, each odd but valid photo a 200 at its
upright size, and the server must still be healthy afterwards with no 500 counted.
"""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .bad_inputs import BadInput, OddPhoto, bad_inputs, odd_photos
from .service_server import LiveServer, fake_server_command, live_server, memberlens_serve_command

MAX_UPLOAD_BYTES = 2_000_000
MAX_PIXELS = 20_000_000
LIMITS_ENV = {
    "MEMBERLENS_LIMITS__MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    "MEMBERLENS_LIMITS__MAX_PIXELS": str(MAX_PIXELS),
    "MEMBERLENS_LIMITS__MAX_BATCH_PHOTOS": "8",
    "MEMBERLENS_RELOAD__INTERVAL_S": "0",
}
BAD_INPUTS = bad_inputs(MAX_UPLOAD_BYTES, MAX_PIXELS)
ODD_PHOTOS = odd_photos()


@pytest.fixture(scope="module", params=["fake-model", "small-bundle"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The live server, once with a fake model (real decoder) and once with a real bundle."""
    if request.param == "fake-model":
        command = fake_server_command()
    else:
        bundle: Path = request.getfixturevalue("small_bundle")
        command = memberlens_serve_command(bundle)
    with live_server(
        command, tmp_path_factory.mktemp("server"), env=LIMITS_ENV, ready_path="/readyz"
    ) as running:
        yield running


def test_corpus_has_at_least_thirty_bad_inputs() -> None:
    assert len(BAD_INPUTS) >= 30
    assert len({bad.name for bad in BAD_INPUTS}) == len(BAD_INPUTS)


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda bad: bad.name)
def test_bad_input_gets_its_error_code(server: LiveServer, bad: BadInput) -> None:
    response = httpx.post(server.base_url + bad.path, timeout=60, **bad.request_arguments())

    body = response.json()
    assert (response.status_code, body.get("code")) == (bad.status, bad.code), body
    assert set(body) == {"code", "message", "status"}
    assert body["status"] == bad.status
    assert len(body["message"]) > 20
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("odd", ODD_PHOTOS, ids=lambda odd: odd.name)
def test_odd_but_valid_photo_is_identified_at_its_upright_size(
    server: LiveServer, odd: OddPhoto
) -> None:
    files = {"image": (odd.name, odd.photo, "application/octet-stream")}

    response = httpx.post(server.base_url + "/v1/identify", files=files, timeout=120)

    body = response.json()
    assert response.status_code == 200, body
    assert body["image"] == {"width": odd.width, "height": odd.height}
    for face in body["faces"]:
        box = face["box"]
        assert 0 <= box["x_min"] <= box["x_max"] <= odd.width
        assert 0 <= box["y_min"] <= box["y_max"] <= odd.height


def test_batch_of_good_and_bad_photos_answers_each(server: LiveServer) -> None:
    good = ODD_PHOTOS[0]
    bad = next(bad for bad in BAD_INPUTS if bad.name == "truncated.jpg")
    assert bad.files is not None
    files = [
        ("images", (good.name, good.photo, "application/octet-stream")),
        ("images", bad.files[0][1]),
        ("images", (good.name, good.photo, "application/octet-stream")),
    ]

    response = httpx.post(server.base_url + "/v1/identify/batch", files=files, timeout=120)

    assert response.status_code == 200
    assert [item["status"] for item in response.json()["results"]] == [200, 400, 200]


def test_server_is_still_healthy_and_counted_no_500(server: LiveServer) -> None:
    for bad in BAD_INPUTS[:5]:
        httpx.post(server.base_url + bad.path, timeout=60, **bad.request_arguments())

    health = httpx.get(server.base_url + "/healthz", timeout=10)
    metrics = httpx.get(server.base_url + "/metrics", timeout=10).text

    assert health.status_code == 200
    assert server.process.poll() is None
    assert 'status="500"' not in metrics
    assert '"level": "error"' not in server.log()
