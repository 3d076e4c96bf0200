"""Test the optional API keys: 401 without a key, 403 with a wrong one, health stays open."""

import pytest

from service.auth import hash_api_key, new_api_key
from service.settings import AuthSettings

from .conftest import assert_error, image_file, serve

KEY = "correct horse battery staple"
OTHER_KEY = "another accepted key"


def _auth() -> AuthSettings:
    return AuthSettings(api_key_hashes=[hash_api_key(KEY), hash_api_key(OTHER_KEY)])


def test_identify_without_a_key_is_401_when_keys_are_configured() -> None:
    with serve(auth=_auth()) as client:
        response = client.post("/v1/identify", files=image_file())

    assert_error(response, 401, "unauthorized")
    assert "X-API-Key" in response.json()["message"]


def test_identify_with_a_wrong_key_is_403() -> None:
    with serve(auth=_auth()) as client:
        response = client.post("/v1/identify", files=image_file(), headers={"X-API-Key": "nope"})

    assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("key", [KEY, OTHER_KEY])
def test_identify_with_any_configured_key_is_answered(key: str) -> None:
    with serve(auth=_auth()) as client:
        response = client.post("/v1/identify", files=image_file(), headers={"X-API-Key": key})

    assert response.status_code == 200


def test_batch_and_metrics_need_a_key_too() -> None:
    with serve(auth=_auth()) as client:
        batch = client.post("/v1/identify/batch", files={"images": ("a.png", b"x", "image/png")})
        metrics = client.get("/metrics")

    assert_error(batch, 401, "unauthorized")
    assert_error(metrics, 401, "unauthorized")


def test_health_routes_and_the_page_stay_open() -> None:
    with serve(auth=_auth()) as client:
        statuses = [client.get(path).status_code for path in ("/healthz", "/readyz", "/")]

    assert statuses == [200, 200, 200]


def test_without_configured_keys_the_api_is_open() -> None:
    with serve() as client:
        response = client.post("/v1/identify", files=image_file())

    assert response.status_code == 200


def test_key_is_checked_before_the_upload_is_read() -> None:
    with serve(auth=_auth()) as client:
        response = client.post("/v1/identify", content=b"not even multipart")

    assert_error(response, 401, "unauthorized")


def test_new_keys_are_random_and_hash_to_the_configured_form() -> None:
    first, second = new_api_key(), new_api_key()

    assert first != second
    assert len(first) >= 40
    assert (
        AuthSettings(api_key_hashes=[hash_api_key(first)]).api_key_hashes[0].startswith("sha256:")
    )
