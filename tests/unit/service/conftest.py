"""Fakes and helpers of the service tests: a fake identifier that decodes photos for real."""

import asyncio
import io
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from PIL import Image

from data_tools.photos import decode_photo
from model.results import BoxDict, Identifier, IdentifyResult, ModelInfoDict
from service.app import create_app
from service.settings import ConcurrencySettings, LimitSettings, ReloadSettings, Settings

MAX_UPLOAD_BYTES = 100_000
MAX_PIXELS = 1_000_000
BUNDLE_DIR = Path("bundles/fake-bundle")
MODEL_INFO = ModelInfoDict(bundle="fake-bundle", thresholds="sha256:fake")


class FakeIdentifier:
    """Decode the photo for real, then answer one face covering its top-left quarter."""

    def __init__(self, bundle: str = "fake-bundle", delay_s: float = 0.0) -> None:
        self.info = ModelInfoDict(bundle=bundle, thresholds="sha256:fake")
        self.delay_s = delay_s
        self.calls: list[dict[str, Any]] = []
        self.ran_inside_event_loop: list[bool] = []
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    @property
    def model_info(self) -> ModelInfoDict:
        """Name the fake bundle."""
        return self.info

    def identify(
        self,
        photo_bytes: bytes,
        *,
        min_face_size_px: int = 0,
        top_k: int = 3,
        return_landmarks: bool = True,
    ) -> IdentifyResult:
        """Decode `photo_bytes` with the real decoder and answer one face named jimin."""
        options = {
            "min_face_size_px": min_face_size_px,
            "top_k": top_k,
            "landmarks": return_landmarks,
        }
        self.calls.append(options)
        self.ran_inside_event_loop.append(_has_running_event_loop())
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            time.sleep(self.delay_s)
            photo = decode_photo(photo_bytes, max_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_PIXELS)
        finally:
            with self._lock:
                self.running -= 1
        return _one_face_result(photo.shape[1], photo.shape[0], self.info, options)


class FailingIdentifier(FakeIdentifier):
    """Fail inside `identify` the way a bug in the pipeline would."""

    def identify(self, photo_bytes: bytes, **options: Any) -> IdentifyResult:
        """Raise an unexpected error whose text must not reach the client."""
        raise RuntimeError("secret internal detail")


def make_settings(bundle: Path | None = BUNDLE_DIR, **overrides: Any) -> Settings:
    """Build settings with small limits, no warm-up and no reload, unless overridden."""
    values: dict[str, Any] = {
        "bundle": bundle,
        "limits": LimitSettings(
            max_upload_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_PIXELS, max_batch_photos=4
        ),
        "concurrency": ConcurrencySettings(workers=1, queue_size=8),
        "reload": ReloadSettings(interval_s=0),
        "warm_up": False,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def serve(
    identifier: Identifier | None = None,
    bundle: Path | None = BUNDLE_DIR,
    load_identifier: Callable[[Path], Identifier] | None = None,
    **overrides: Any,
) -> Iterator[TestClient[Any]]:
    """Start the app (running its startup) around a test client."""
    loaded = identifier or FakeIdentifier()
    app = create_app(
        make_settings(bundle, **overrides), load_identifier or (lambda bundle_dir: loaded)
    )
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


def image_file(name: str = "a.png", photo: bytes | None = None) -> dict[str, Any]:
    """Return the `files` argument of one photo in the field `image`."""
    return {"image": (name, png_bytes() if photo is None else photo, "image/png")}


def assert_error(response: Any, status: int, code: str) -> None:
    """Check the status and that the body is exactly the error shape with the given code."""
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"code", "message", "status"}
    assert body["code"] == code
    assert body["status"] == status
    assert body["message"]


def _one_face_result(
    width: int, height: int, info: ModelInfoDict, options: dict[str, Any]
) -> IdentifyResult:
    box = BoxDict(x_min=0, y_min=0, x_max=width // 2, y_max=height // 2)
    is_kept = min(width // 2, height // 2) >= options["min_face_size_px"]
    candidates = [{"name": "jimin", "score": 0.97}, {"name": "jin", "score": 0.02}]
    face: dict[str, Any] = {
        "box": box,
        "detection_score": 0.999,
        "member": "jimin",
        "candidates": candidates[: options["top_k"]],
    }
    if options["landmarks"]:
        face["landmarks"] = [[1.0, 2.0]] * 5
    return {
        "image": {"width": width, "height": height},
        "members": [{"name": "jimin", "score": 0.97, "source": "face", "box": box}]
        if is_kept
        else [],
        "faces": [face] if is_kept else [],  # type: ignore[list-item]
        "image_scores": {"jimin": 0.95},
        "model": info,
        "timings_ms": {"decode": 1.0, "detect": 2.0, "total": 3.0},
    }


def _has_running_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    checksum = zlib.crc32(chunk_type + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + chunk_type + payload + struct.pack(">I", checksum)
