"""Test the operator's routes: health, readiness, metrics, and request ids in logs."""

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from data_tools.errors import BundleLoadError
from model.results import Identifier, IdentifyResult
from service.logs import JsonFormatter, RequestIdFilter

from .conftest import MODEL_INFO, FakeIdentifier, image_file, png_bytes, serve


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_healthz_answers_ok_while_the_process_runs() -> None:
    with serve(bundle=None) as client:
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_names_bundle_and_thresholds_when_a_model_is_loaded() -> None:
    with serve() as client:
        response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "model": MODEL_INFO,
        "reason": None,
        "last_reload_error": None,
    }


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


def test_metrics_count_requests_by_route_and_status() -> None:
    with serve() as client:
        client.post("/v1/identify", files=image_file())
        client.post("/v1/identify", files=image_file("a.png", b""))
        client.get("/no/such/route")
        text = client.get("/metrics").text

    samples = _samples(text)
    identify = "/v1/identify"
    key = "memberlens_http_requests_total"
    assert samples[(key, (("method", "POST"), ("route", identify), ("status", "200")))] == 1
    assert samples[(key, (("method", "POST"), ("route", identify), ("status", "400")))] == 1
    assert samples[(key, (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    latency_count = "memberlens_http_request_duration_seconds_count"
    assert samples[(latency_count, (("route", identify),))] == 2


def test_metrics_time_each_pipeline_step_and_count_faces() -> None:
    with serve() as client:
        client.post("/v1/identify", files=image_file())
        client.post("/v1/identify", files=image_file())
        text = client.get("/metrics").text

    samples = _samples(text)
    step_count = "memberlens_pipeline_step_duration_seconds_count"
    for step in ("decode", "detect", "total"):
        assert samples[(step_count, (("step", step),))] == 2
    assert samples[("memberlens_faces_per_photo_count", ())] == 2
    assert samples[("memberlens_faces_per_photo_sum", ())] == 2


def test_metrics_name_the_bundle_in_use() -> None:
    with serve() as client:
        text = client.get("/metrics").text

    samples = _samples(text)
    labels = (("bundle", "fake-bundle"), ("thresholds", "sha256:fake"))
    assert samples[("memberlens_bundle_info", labels)] == 1
    assert samples[("memberlens_model_loaded", ())] == 1
    assert samples[("memberlens_inference_queue", (("state", "waiting"),))] == 0


def test_every_answer_carries_a_request_id_header() -> None:
    with serve() as client:
        routed = client.get("/healthz")
        unrouted = client.get("/nothing")
        kept = client.get("/healthz", headers={"X-Request-ID": "client-id-1"})
        forged = client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})

    assert len(routed.headers["x-request-id"]) == 32
    assert len(unrouted.headers["x-request-id"]) == 32
    assert kept.headers["x-request-id"] == "client-id-1"
    assert forged.headers["x-request-id"] != "bad id\nwith newline"


def test_logs_of_a_request_carry_its_id_and_no_photo_bytes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())
    photo = png_bytes()

    with serve() as client:
        response = client.post(
            "/v1/identify", files=image_file("a.png", photo), headers={"X-Request-ID": "req-42"}
        )

    assert response.status_code == 200
    identified = [r for r in caplog.records if r.getMessage() == "photo identified"]
    answered = [r for r in caplog.records if r.getMessage() == "request answered"]
    assert [getattr(r, "request_id", None) for r in identified] == ["req-42"]
    assert [getattr(r, "request_id", None) for r in answered] == ["req-42"]
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert all(json.loads(line)["message"] for line in lines)
    assert not any(photo[:16].hex() in line or "PNG" in line for line in lines)


def test_logs_from_the_inference_thread_carry_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())
    pipeline_logger = logging.getLogger("model.fake")

    class LoggingIdentifier(FakeIdentifier):
        def identify(self, photo_bytes: bytes, **options: Any) -> IdentifyResult:
            pipeline_logger.info("inference step")
            return super().identify(photo_bytes, **options)

    with serve(identifier=LoggingIdentifier()) as client:
        client.post("/v1/identify", files=image_file(), headers={"X-Request-ID": "req-7"})

    steps = [r for r in caplog.records if r.getMessage() == "inference step"]
    assert [getattr(r, "request_id", None) for r in steps] == ["req-7"]
