"""Test the HTTP API through litestar's test client, with real photo decoding and a fake model."""

import asyncio
import io
import logging
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from litestar.testing import AsyncTestClient, TestClient
from PIL import Image

from data_tools.errors import BundleLoadError
from data_tools.photos import decode_photo
from model.results import BoxDict, Identifier, IdentifyResult, ModelInfoDict
from service.app import MULTIPART_OVERHEAD_BYTES, create_app
from service.settings import LimitSettings, Settings

MAX_UPLOAD_BYTES = 100_000
MAX_PIXELS = 1_000_000
BUNDLE_DIR = Path("bundles/fake-bundle")
MODEL_INFO = ModelInfoDict(bundle="fake-bundle", thresholds="sha256:fake")


class FakeIdentifier:
    """Decode the photo for real, then answer one fake face in its top-left corner."""

    def __init__(self) -> None:
        self.ran_inside_event_loop: list[bool] = []

    @property
    def model_info(self) -> ModelInfoDict:
        """Name the fake bundle."""
        return MODEL_INFO

    def identify(self, photo_bytes: bytes) -> IdentifyResult:
        """Decode `photo_bytes` with the real decoder and answer one face named jimin."""
        self.ran_inside_event_loop.append(_has_running_event_loop())
        photo = decode_photo(photo_bytes, max_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_PIXELS)
        height, width = photo.shape[:2]
        box = BoxDict(x_min=0, y_min=0, x_max=width // 2, y_max=height // 2)
        return {
            "image": {"width": width, "height": height},
            "members": [{"name": "jimin", "score": 0.97, "source": "face", "box": box}],
            "faces": [
                {
                    "box": box,
                    "detection_score": 0.999,
                    "landmarks": [[1.0, 2.0]] * 5,
                    "member": "jimin",
                    "candidates": [{"name": "jimin", "score": 0.97}],
                }
            ],
            "image_scores": {"jimin": 0.95},
            "model": MODEL_INFO,
            "timings_ms": {"decode": 1.0, "total": 2.0},
        }


class FailingIdentifier(FakeIdentifier):
    """Fail inside `identify` the way a bug in the pipeline would."""

    def identify(self, photo_bytes: bytes) -> IdentifyResult:
        """Raise an unexpected error whose text must not reach the client."""
        raise RuntimeError("secret internal detail")


class SlowIdentifier(FakeIdentifier):
    """Record how many inferences run at the same time."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def identify(self, photo_bytes: bytes) -> IdentifyResult:
        """Count this inference as running for a short while, then answer as the fake does."""
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        time.sleep(0.05)
        with self._lock:
            self.running -= 1
        return super().identify(photo_bytes)


def make_settings(bundle: Path | None = BUNDLE_DIR) -> Settings:
    """Build settings with small limits, so that tests can cross them cheaply."""
    limits = LimitSettings(max_upload_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_PIXELS)
    return Settings(bundle=bundle, limits=limits)


@contextmanager
def serve(
    identifier: Identifier | None = None,
    bundle: Path | None = BUNDLE_DIR,
    load_identifier: Callable[[Path], Identifier] | None = None,
) -> Iterator[TestClient[Any]]:
    """Start the app (running its startup) around a test client."""
    loaded = identifier or FakeIdentifier()
    app = create_app(make_settings(bundle), load_identifier or (lambda bundle_dir: loaded))
    with TestClient(app) as client:
        yield client


def png_bytes(width: int = 64, height: int = 48) -> bytes:
    """Encode a small RGB PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def truncated_jpeg_bytes() -> bytes:
    """Encode a noisy JPEG and keep only its first half."""
    buffer = io.BytesIO()
    Image.effect_noise((128, 128), 64).convert("RGB").save(buffer, format="JPEG", quality=90)
    whole = buffer.getvalue()
    return whole[: len(whole) // 2]


def png_claiming_size_bytes(width: int, height: int) -> bytes:
    """Build a tiny PNG whose header claims `width` x `height` pixels (its data is a stub)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def assert_error(response: Any, status: int, code: str) -> None:
    """Check the status and that the body is exactly the error shape with the given code."""
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"code", "message", "status"}
    assert body["code"] == code
    assert body["status"] == status
    assert body["message"]


def test_healthz_answers_ok_while_the_process_runs() -> None:
    with serve(bundle=None) as client:
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_names_bundle_and_thresholds_when_a_model_is_loaded() -> None:
    with serve() as client:
        response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "model": MODEL_INFO, "reason": None}


def test_bundle_is_loaded_once_at_startup_from_the_configured_folder() -> None:
    loaded_from: list[Path] = []

    def load(bundle_dir: Path) -> Identifier:
        loaded_from.append(bundle_dir)
        return FakeIdentifier()

    with serve(load_identifier=load) as client:
        client.get("/readyz")
        client.post("/v1/identify", files={"image": ("a.png", png_bytes(), "image/png")})

    assert loaded_from == [BUNDLE_DIR]


def test_readyz_is_503_with_reason_when_no_bundle_is_configured() -> None:
    with serve(bundle=None) as client:
        response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "not_ready"
    assert body["model"] is None
    assert "no model bundle is configured" in body["reason"]


def test_readyz_is_503_with_reason_when_the_bundle_fails_to_load() -> None:
    def load(bundle_dir: Path) -> Identifier:
        raise BundleLoadError("manifest.json is missing; rebuild the bundle")

    with serve(load_identifier=load) as client:
        response = client.get("/readyz")

    assert response.status_code == 503
    assert "manifest.json is missing" in response.json()["reason"]


def test_identify_is_503_model_not_loaded_when_the_bundle_fails_to_load() -> None:
    def load(bundle_dir: Path) -> Identifier:
        raise BundleLoadError("manifest.json is missing; rebuild the bundle")

    with serve(load_identifier=load) as client:
        response = client.post("/v1/identify", files={"image": ("a.png", png_bytes(), "image/png")})

    assert_error(response, 503, "model_not_loaded")


def test_identify_is_503_model_not_loaded_when_no_bundle_is_configured() -> None:
    with serve(bundle=None) as client:
        response = client.post("/v1/identify", files={"image": ("a.png", png_bytes(), "image/png")})

    assert_error(response, 503, "model_not_loaded")


def test_good_png_returns_the_identify_result() -> None:
    with serve() as client:
        response = client.post(
            "/v1/identify", files={"image": ("photo.png", png_bytes(64, 48), "image/png")}
        )

    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"image", "members", "faces", "image_scores", "model", "timings_ms"}
    assert body["image"] == {"width": 64, "height": 48}
    assert body["members"][0] == {
        "name": "jimin",
        "score": 0.97,
        "source": "face",
        "box": {"x_min": 0, "y_min": 0, "x_max": 32, "y_max": 24},
    }
    assert body["faces"][0]["member"] == "jimin"
    assert body["model"] == MODEL_INFO


def test_identify_runs_off_the_event_loop() -> None:
    identifier = FakeIdentifier()

    with serve(identifier=identifier) as client:
        client.post("/v1/identify", files={"image": ("a.png", png_bytes(), "image/png")})

    assert identifier.ran_inside_event_loop == [False]


def test_concurrent_requests_run_one_inference_at_a_time() -> None:
    identifier = SlowIdentifier()
    app = create_app(make_settings(), lambda bundle_dir: identifier)
    files = {"image": ("a.png", png_bytes(), "image/png")}

    async def post_three() -> list[int]:
        async with AsyncTestClient(app) as client:
            responses = await asyncio.gather(
                *(client.post("/v1/identify", files=files) for _ in range(3))
            )
        return [response.status_code for response in responses]

    statuses = anyio.run(post_three)

    assert statuses == [200, 200, 200]
    assert identifier.most_running == 1


def test_truncated_jpeg_is_400_invalid_photo() -> None:
    with serve() as client:
        response = client.post(
            "/v1/identify", files={"image": ("a.jpg", truncated_jpeg_bytes(), "image/jpeg")}
        )

    assert_error(response, 400, "invalid_photo")


def test_empty_upload_is_400_invalid_photo() -> None:
    with serve() as client:
        response = client.post("/v1/identify", files={"image": ("a.jpg", b"", "image/jpeg")})

    assert_error(response, 400, "invalid_photo")


def test_text_file_is_415_unsupported_photo_type() -> None:
    text = b"name,score\njimin,0.97\n"

    with serve() as client:
        response = client.post("/v1/identify", files={"image": ("a.png", text, "image/png")})

    assert_error(response, 415, "unsupported_photo_type")


def test_png_claiming_huge_dimensions_is_413_photo_too_large() -> None:
    photo = png_claiming_size_bytes(20_000, 20_000)

    with serve() as client:
        response = client.post("/v1/identify", files={"image": ("a.png", photo, "image/png")})

    assert len(photo) < 200
    assert_error(response, 413, "photo_too_large")


def test_photo_over_the_byte_limit_is_413_photo_too_large() -> None:
    photo = png_bytes() + b"\x00" * MAX_UPLOAD_BYTES

    with serve() as client:
        response = client.post("/v1/identify", files={"image": ("a.png", photo, "image/png")})

    assert_error(response, 413, "photo_too_large")


def test_body_over_the_request_limit_is_413_photo_too_large() -> None:
    photo = b"\x00" * (MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES + 1)

    with serve() as client:
        response = client.post("/v1/identify", files={"image": ("a.png", photo, "image/png")})

    assert_error(response, 413, "photo_too_large")


def test_multipart_without_image_field_is_422_invalid_parameters() -> None:
    with serve() as client:
        response = client.post(
            "/v1/identify", data={"note": "hello"}, files={"other": ("a.txt", b"x", "text/plain")}
        )

    assert_error(response, 422, "invalid_parameters")


def test_photo_in_wrongly_named_field_is_422_invalid_parameters() -> None:
    with serve() as client:
        response = client.post("/v1/identify", files={"photo": ("a.png", png_bytes(), "image/png")})

    assert_error(response, 422, "invalid_parameters")


def test_post_without_body_is_422_invalid_parameters() -> None:
    with serve() as client:
        response = client.post("/v1/identify")

    assert_error(response, 422, "invalid_parameters")


def test_json_body_instead_of_multipart_is_422_invalid_parameters() -> None:
    # Not multipart is a malformed request, not a photo of the wrong type, so it is a 422:
    # 415 `unsupported_photo_type` stays reserved for an uploaded file that is not a photo.
    with serve() as client:
        response = client.post("/v1/identify", json={"image": "aGVsbG8="})

    assert_error(response, 422, "invalid_parameters")


def test_image_sent_as_plain_text_field_is_422_invalid_parameters() -> None:
    with serve() as client:
        response = client.post(
            "/v1/identify", data={"image": "hello"}, files={"other": ("a.txt", b"x", "text/plain")}
        )

    assert_error(response, 422, "invalid_parameters")


def test_binary_field_without_filename_is_422_not_500() -> None:
    body = (
        b'--sep\r\nContent-Disposition: form-data; name="image"\r\n\r\n'
        + png_bytes()
        + b"\r\n--sep--\r\n"
    )

    with serve() as client:
        response = client.post(
            "/v1/identify",
            content=body,
            headers={"content-type": "multipart/form-data; boundary=sep"},
        )

    assert_error(response, 422, "invalid_parameters")


def test_two_files_in_image_field_is_422_invalid_parameters() -> None:
    files = [
        ("image", ("a.png", png_bytes(), "image/png")),
        ("image", ("b.png", png_bytes(), "image/png")),
    ]

    with serve() as client:
        response = client.post("/v1/identify", files=files)

    assert_error(response, 422, "invalid_parameters")


def test_unexpected_error_in_identify_is_500_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="service.errors")

    with serve(identifier=FailingIdentifier()) as client:
        response = client.post("/v1/identify", files={"image": ("a.png", png_bytes(), "image/png")})

    assert_error(response, 500, "internal_error")
    assert "Traceback" not in response.text
    assert "secret internal detail" not in response.text
    failures = [record for record in caplog.records if record.getMessage() == "request failed"]
    assert len(failures) == 1
    assert failures[0].exc_info is not None


def test_unknown_route_is_404_in_the_error_shape() -> None:
    with serve() as client:
        response = client.get("/v1/nothing-here")

    assert_error(response, 404, "not_found")


def _has_running_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    checksum = zlib.crc32(chunk_type + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + chunk_type + payload + struct.pack(">I", checksum)
