"""Start the real uvicorn server on 127.0.0.1 for integration tests, with a real or fake model.

Run as `python -m tests.integration.service_server` it serves a fake identifier (the real
photo decoder, then one fake face), with settings from MEMBERLENS_* variables and
`--delay-s` seconds of pretended inference, through the same `serve_app` as `memberlens serve`.
"""

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

from data_tools.photos import decode_photo
from model.results import BoxDict, IdentifyResult, ModelInfoDict

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
HOST = "127.0.0.1"
FAKE_MODEL_INFO = ModelInfoDict(bundle="fake-live", thresholds="sha256:fake")


@dataclass
class LiveServer:
    """A server process listening on 127.0.0.1; `log_path` holds its stderr."""

    base_url: str
    process: "subprocess.Popen[bytes]"
    log_path: Path

    def log(self) -> str:
        """Return what the server logged so far."""
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def fake_server_command(delay_s: float = 0.0) -> list[str]:
    """Return the command that serves the fake identifier of this module."""
    return [PYTHON, "-m", "tests.integration.service_server", "--delay-s", str(delay_s)]


def memberlens_serve_command(bundle: Path) -> list[str]:
    """Return the command that serves a real bundle, as an operator runs it."""
    return [PYTHON, "-m", "service.cli", "serve", "--bundle", str(bundle)]


@contextmanager
def live_server(
    command: list[str],
    log_dir: Path,
    env: dict[str, str] | None = None,
    ready_path: str = "/healthz",
    start_timeout_s: float = 120.0,
) -> Iterator[LiveServer]:
    """Run `command` with MEMBERLENS_PORT set to a free port until it answers `ready_path`.

    The server is sent SIGTERM on exit, and killed if it has not stopped 30 s later.
    """
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    full_env = {
        **os.environ,
        "MEMBERLENS_HOST": HOST,
        "MEMBERLENS_PORT": str(port),
        "MEMBERLENS_LOG_FORMAT": "json",
        **(env or {}),
    }
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=full_env, stdout=log_file, stderr=subprocess.STDOUT
        )
    server = LiveServer(f"http://{HOST}:{port}", process, log_path)
    try:
        _wait_until_answering(server, ready_path, start_timeout_s)
        yield server
    finally:
        stop(server)


def stop(server: LiveServer, timeout_s: float = 30.0) -> int:
    """Send SIGTERM, wait for the exit status, and kill the server if it does not stop."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        server.process.kill()
        return server.process.wait(timeout=timeout_s)


def _wait_until_answering(server: LiveServer, path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.base_url + path, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer {path} within {timeout_s} s:\n{server.log()}")


class SlowFakeIdentifier:
    """Decode the photo for real, wait `delay_s` as an inference would, answer one fake face."""

    def __init__(self, delay_s: float, max_upload_bytes: int, max_pixels: int) -> None:
        self.delay_s = delay_s
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels

    @property
    def model_info(self) -> ModelInfoDict:
        """Name the fake bundle."""
        return FAKE_MODEL_INFO

    def identify(
        self,
        photo_bytes: bytes,
        *,
        min_face_size_px: int = 0,
        top_k: int = 3,
        return_landmarks: bool = True,
    ) -> IdentifyResult:
        """Decode, pretend to infer, and answer one face over the top-left quarter."""
        photo = decode_photo(
            photo_bytes, max_bytes=self.max_upload_bytes, max_pixels=self.max_pixels
        )
        time.sleep(self.delay_s)
        height, width = photo.shape[:2]
        box = BoxDict(x_min=0, y_min=0, x_max=width // 2, y_max=height // 2)
        candidates = [{"name": "jimin", "score": 0.97}, {"name": "jin", "score": 0.02}][:top_k]
        face = {"box": box, "detection_score": 0.99, "member": "jimin", "candidates": candidates}
        if return_landmarks:
            face["landmarks"] = [[1.0, 2.0]] * 5
        return {
            "image": {"width": width, "height": height},
            "members": [{"name": "jimin", "score": 0.97, "source": "face", "box": box}],
            "faces": [face],  # type: ignore[list-item]
            "image_scores": {},
            "model": FAKE_MODEL_INFO,
            "timings_ms": {"decode": 1.0, "total": 1.0 + 1000 * self.delay_s},
        }


def jpeg_photo_bytes(width: int = 64, height: int = 48) -> bytes:
    """Encode a small plain JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _serve_fake(argv: list[str] | None = None) -> int:
    from service.app import create_app
    from service.logs import configure_logging
    from service.serve_cli import serve_app
    from service.settings import load_settings

    parser = argparse.ArgumentParser(description="serve a fake identifier for tests")
    parser.add_argument("--delay-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    settings = load_settings().model_copy(update={"bundle": Path("fake-bundle")})
    configure_logging(settings.log_format)
    identifier = SlowFakeIdentifier(
        args.delay_s, settings.limits.max_upload_bytes, settings.limits.max_pixels
    )
    serve_app(create_app(settings, lambda bundle_dir: identifier), settings)
    return 0


if __name__ == "__main__":
    sys.exit(_serve_fake())
