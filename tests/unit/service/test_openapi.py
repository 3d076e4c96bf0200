"""Test that the OpenAPI schema is served and describes the routes as they behave."""

from typing import Any

from service.auth import hash_api_key
from service.settings import AuthSettings

from .conftest import MAX_UPLOAD_BYTES, serve


def _schema(**overrides: Any) -> dict[str, Any]:
    with serve(**overrides) as client:
        response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def test_schema_lists_the_api_and_operator_routes_but_not_the_page() -> None:
    paths = _schema()["paths"]

    assert set(paths) == {"/v1/identify", "/v1/identify/batch", "/healthz", "/readyz", "/metrics"}


def test_identify_schema_describes_the_multipart_body_and_options() -> None:
    operation = _schema()["paths"]["/v1/identify"]["post"]

    body = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    parameters = {parameter["name"]: parameter["schema"] for parameter in operation["parameters"]}
    assert body["properties"]["image"] == {
        "type": "string",
        "format": "binary",
        "maxLength": MAX_UPLOAD_BYTES,
    }
    assert body["required"] == ["image"]
    assert parameters["top_k"]["maximum"] == 50
    assert parameters["min_face_size"]["minimum"] == 0
    assert parameters["landmarks"]["type"] == "boolean"


def test_batch_schema_bounds_the_number_of_photos() -> None:
    operation = _schema()["paths"]["/v1/identify/batch"]["post"]

    body = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["properties"]["images"]["minItems"] == 1
    assert body["properties"]["images"]["maxItems"] == 4


def test_identify_schema_lists_every_error_status_with_the_error_shape() -> None:
    schema = _schema()
    responses = schema["paths"]["/v1/identify"]["post"]["responses"]

    assert set(responses) == {"200", "400", "401", "403", "413", "415", "422", "500", "503"}
    for status in ("400", "413", "415", "422", "503"):
        reference = responses[status]["content"]["application/json"]["schema"]["$ref"]
        assert reference == "#/components/schemas/ErrorBody"


def test_schema_declares_the_api_key_header_only_when_keys_are_configured() -> None:
    open_schema = _schema()
    keyed = _schema(auth=AuthSettings(api_key_hashes=[hash_api_key("k")]))

    assert "security" not in open_schema["paths"]["/v1/identify"]["post"]
    assert keyed["paths"]["/v1/identify"]["post"]["security"] == [{"apiKey": []}]
    assert keyed["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
    assert "security" not in keyed["paths"]["/healthz"]["get"]
