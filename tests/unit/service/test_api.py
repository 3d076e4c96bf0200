"""Test the identify routes through litestar's test client, with real decoding and a fake model."""

import io
import logging
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from data_tools.errors import BundleLoadError
from model.results import Identifier
from service.app import MULTIPART_OVERHEAD_BYTES

from .conftest import (
    BUNDLE_DIR,
    MAX_UPLOAD_BYTES,
    MODEL_INFO,
    FailingIdentifier,
    FakeIdentifier,
    assert_error,
    image_file,
    png_bytes,
    png_claiming_size_bytes,
    serve,
    truncated_jpeg_bytes,
)


def test_bundle_is_loaded_once_at_startup_from_the_configured_folder() -> None:
    loaded_from: list[Path] = []

    def load(bundle_dir: Path) -> Identifier:
        loaded_from.append(bundle_dir)
        return FakeIdentifier()

    with serve(load_identifier=load) as client:
        client.get("/readyz")
        client.post("/v1/identify", files=image_file())

    assert loaded_from == [BUNDLE_DIR]


def test_startup_warms_the_model_with_one_inference_before_serving() -> None:
    identifier = FakeIdentifier()

    with serve(identifier=identifier, warm_up=True) as client:
        calls_before_any_request = len(identifier.calls)
        client.post("/v1/identify", files=image_file())

    assert calls_before_any_request == 1
    assert len(identifier.calls) == 2


def test_identify_is_503_model_not_loaded_when_the_bundle_fails_to_load() -> None:
    def load(bundle_dir: Path) -> Identifier:
        raise BundleLoadError("manifest.json is missing; rebuild the bundle")

    with serve(load_identifier=load) as client:
        response = client.post("/v1/identify", files=image_file())

    assert_error(response, 503, "model_not_loaded")
    assert "manifest.json is missing" in response.json()["message"]


def test_identify_is_503_model_not_loaded_when_no_bundle_is_configured() -> None:
    with serve(bundle=None) as client:
        response = client.post("/v1/identify", files=image_file())

    assert_error(response, 503, "model_not_loaded")


def test_good_png_returns_the_identify_result() -> None:
    with serve() as client:
        response = client.post("/v1/identify", files=image_file("photo.png", png_bytes(64, 48)))

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
        client.post("/v1/identify", files=image_file())

    assert identifier.ran_inside_event_loop == [False]


def test_options_reach_the_identifier_from_the_query() -> None:
    identifier = FakeIdentifier()

    with serve(identifier=identifier) as client:
        response = client.post(
            "/v1/identify?min_face_size=10&top_k=1&landmarks=false", files=image_file()
        )

    face = response.json()["faces"][0]
    assert response.status_code == 200
    assert identifier.calls == [{"min_face_size_px": 10, "top_k": 1, "landmarks": False}]
    assert len(face["candidates"]) == 1
    assert "landmarks" not in face


def test_default_options_are_three_candidates_with_landmarks() -> None:
    identifier = FakeIdentifier()

    with serve(identifier=identifier) as client:
        client.post("/v1/identify", files=image_file())

    assert identifier.calls == [{"min_face_size_px": 0, "top_k": 3, "landmarks": True}]


@pytest.mark.parametrize(
    "query",
    [
        "top_k=-1",
        "top_k=51",
        "top_k=two",
        "min_face_size=-5",
        "min_face_size=1e9",
        "landmarks=maybe",
    ],
)
def test_out_of_range_option_is_422_invalid_parameters(query: str) -> None:
    with serve() as client:
        response = client.post(f"/v1/identify?{query}", files=image_file())

    assert_error(response, 422, "invalid_parameters")
    assert query.split("=")[0] in response.json()["message"]


def test_truncated_jpeg_is_400_invalid_photo() -> None:
    with serve() as client:
        response = client.post("/v1/identify", files=image_file("a.jpg", truncated_jpeg_bytes()))

    assert_error(response, 400, "invalid_photo")


def test_empty_upload_is_400_invalid_photo() -> None:
    with serve() as client:
        response = client.post("/v1/identify", files=image_file("a.jpg", b""))

    assert_error(response, 400, "invalid_photo")


def test_text_file_is_415_unsupported_photo_type() -> None:
    with serve() as client:
        response = client.post(
            "/v1/identify", files=image_file("a.png", b"name,score\njimin,0.97\n")
        )

    assert_error(response, 415, "unsupported_photo_type")


def test_heic_photo_is_decoded() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(buffer, format="HEIF")
    assert buffer.getvalue()[4:12] == b"ftypheic"

    with serve() as client:
        response = client.post("/v1/identify", files=image_file("a.heic", buffer.getvalue()))

    assert response.status_code == 200, response.json()
    assert response.json()["image"] == {"width": 64, "height": 48}
    assert pillow_heif.__version__


def test_png_claiming_huge_dimensions_is_413_photo_too_large() -> None:
    photo = png_claiming_size_bytes(20_000, 20_000)

    with serve() as client:
        response = client.post("/v1/identify", files=image_file("a.png", photo))

    assert len(photo) < 200
    assert_error(response, 413, "photo_too_large")


def test_photo_over_the_byte_limit_is_413_photo_too_large() -> None:
    photo = png_bytes() + b"\x00" * MAX_UPLOAD_BYTES

    with serve() as client:
        response = client.post("/v1/identify", files=image_file("a.png", photo))

    assert_error(response, 413, "photo_too_large")


def test_body_over_the_request_limit_is_413_photo_too_large() -> None:
    photo = b"\x00" * (MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES + 1)

    with serve() as client:
        response = client.post("/v1/identify", files=image_file("a.png", photo))

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


def test_malformed_multipart_is_422_not_500() -> None:
    with serve() as client:
        response = client.post(
            "/v1/identify",
            content=b"--sep\r\nnot a header line\r\n\r\nxx",
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
        response = client.post("/v1/identify", files=image_file())

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


def test_wrong_method_is_405_in_the_error_shape() -> None:
    with serve() as client:
        response = client.get("/v1/identify")

    assert_error(response, 405, "method_not_allowed")


@pytest.mark.parametrize("image_format", ["ICO", "PPM", "TGA"])
def test_image_of_a_format_not_taken_is_415(image_format: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buffer, format=image_format)

    with serve() as client:
        response = client.post("/v1/identify", files=image_file("a.img", buffer.getvalue()))

    assert_error(response, 415, "unsupported_photo_type")
    assert image_format in response.json()["message"]
