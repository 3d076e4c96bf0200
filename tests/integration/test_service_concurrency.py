"""Load-shedding and graceful shutdown of the live server, with a slow fake model.

Runs the real uvicorn server on 127.0.0.1 through the same `serve_app` as `memberlens serve`.
"""

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .service_server import LiveServer, fake_server_command, jpeg_photo_bytes, live_server

RETRY_AFTER_S = 3


def _identify(server: LiveServer) -> httpx.Response:
    files = {"image": ("a.jpg", jpeg_photo_bytes(), "image/jpeg")}
    return httpx.post(server.base_url + "/v1/identify", files=files, timeout=60)


def _wait_for_running_inference(server: LiveServer) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metrics = httpx.get(server.base_url + "/metrics", timeout=5).text
        if 'memberlens_inference_queue{state="running"} 1.0' in metrics:
            return
        time.sleep(0.02)
    pytest.fail("no inference started within 10 s")


def test_requests_past_the_queue_get_503_with_retry_after(tmp_path: Path) -> None:
    env = {
        "MEMBERLENS_CONCURRENCY__WORKERS": "1",
        "MEMBERLENS_CONCURRENCY__QUEUE_SIZE": "1",
        "MEMBERLENS_CONCURRENCY__RETRY_AFTER_S": str(RETRY_AFTER_S),
    }
    with live_server(fake_server_command(delay_s=1.5), tmp_path, env=env) as server:
        first = ThreadPoolExecutor(1).submit(_identify, server)
        _wait_for_running_inference(server)
        with ThreadPoolExecutor(5) as pool:
            rest = list(pool.map(lambda _: _identify(server), range(5)))
        responses = [first.result(), *rest]
        metrics = httpx.get(server.base_url + "/metrics", timeout=5).text

    statuses = sorted(response.status_code for response in responses)
    refused = [response for response in responses if response.status_code == 503]
    assert statuses == [200, 200, 503, 503, 503, 503]
    assert {response.json()["code"] for response in refused} == {"overloaded"}
    assert {response.headers["retry-after"] for response in refused} == {str(RETRY_AFTER_S)}
    assert "memberlens_inference_rejected_total 4.0" in metrics


def test_sigterm_lets_the_request_in_flight_finish(tmp_path: Path) -> None:
    with live_server(fake_server_command(delay_s=2.0), tmp_path) as server:
        in_flight = ThreadPoolExecutor(1).submit(_identify, server)
        _wait_for_running_inference(server)

        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.TransportError):
            httpx.get(server.base_url + "/healthz", timeout=2)
        response = in_flight.result(timeout=30)
        exit_status = server.process.wait(timeout=30)
        log = server.log()

    assert response.status_code == 200
    assert response.json()["faces"]
    # uvicorn shuts down cleanly, then re-raises the signal so that the exit shows its cause.
    assert exit_status in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in log
    assert '"level": "error"' not in log


def test_health_answers_while_an_inference_runs(tmp_path: Path) -> None:
    with live_server(fake_server_command(delay_s=1.5), tmp_path) as server:
        in_flight = ThreadPoolExecutor(1).submit(_identify, server)
        _wait_for_running_inference(server)
        started = time.perf_counter()
        health = httpx.get(server.base_url + "/healthz", timeout=5)
        health_s = time.perf_counter() - started
        in_flight.result(timeout=30)

    assert health.status_code == 200
    assert health_s < 0.5
