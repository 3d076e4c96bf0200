"""Test the batch route: several photos in one request, each answered on its own."""

from typing import Any

from .conftest import FakeIdentifier, assert_error, png_bytes, serve, truncated_jpeg_bytes


def _photos(*photos: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (name, photo, "application/octet-stream")) for name, photo in photos]


def test_batch_answers_each_photo_in_order() -> None:
    files = _photos(("a.png", png_bytes(64, 48)), ("b.png", png_bytes(32, 32)))

    with serve() as client:
        response = client.post("/v1/identify/batch", files=files)

    results = response.json()["results"]
    assert response.status_code == 200
    assert [item["index"] for item in results] == [0, 1]
    assert [item["filename"] for item in results] == ["a.png", "b.png"]
    assert [item["status"] for item in results] == [200, 200]
    assert results[1]["result"]["image"] == {"width": 32, "height": 32}
    assert all(item["error"] is None for item in results)


def test_one_bad_photo_gets_its_own_error_and_spares_the_others() -> None:
    files = _photos(
        ("good.png", png_bytes()),
        ("broken.jpg", truncated_jpeg_bytes()),
        ("notes.txt", b"just some text\n"),
        ("empty.png", b""),
        ("also-good.png", png_bytes()),
    )

    with serve(limits={"max_batch_photos": 8, "max_upload_bytes": 100_000}) as client:
        response = client.post("/v1/identify/batch", files=files)

    results: list[dict[str, Any]] = response.json()["results"]
    assert response.status_code == 200
    assert [item["status"] for item in results] == [200, 400, 415, 400, 200]
    assert [item["error"]["code"] for item in results if item["error"]] == [
        "invalid_photo",
        "unsupported_photo_type",
        "invalid_photo",
    ]
    assert results[1]["result"] is None
    assert results[4]["result"]["faces"]


def test_batch_options_apply_to_every_photo() -> None:
    identifier = FakeIdentifier()
    files = _photos(("a.png", png_bytes()), ("b.png", png_bytes()))

    with serve(identifier=identifier) as client:
        client.post("/v1/identify/batch?top_k=1&landmarks=false", files=files)

    assert identifier.calls == [{"min_face_size_px": 0, "top_k": 1, "landmarks": False}] * 2


def test_batch_over_the_photo_limit_is_422() -> None:
    files = _photos(*[(f"{index}.png", png_bytes()) for index in range(5)])

    with serve() as client:
        response = client.post("/v1/identify/batch", files=files)

    assert_error(response, 422, "invalid_parameters")
    assert "at most 4" in response.json()["message"]


def test_batch_without_images_field_is_422() -> None:
    with serve() as client:
        response = client.post(
            "/v1/identify/batch", files={"image": ("a.png", png_bytes(), "image/png")}
        )

    assert_error(response, 422, "invalid_parameters")


def test_batch_runs_in_one_pool_slot_one_photo_after_another() -> None:
    identifier = FakeIdentifier(delay_s=0.01)
    files = _photos(*[(f"{index}.png", png_bytes()) for index in range(4)])

    with serve(identifier=identifier) as client:
        response = client.post("/v1/identify/batch", files=files)

    assert response.status_code == 200
    assert identifier.most_running == 1
    assert identifier.ran_inside_event_loop == [False] * 4
