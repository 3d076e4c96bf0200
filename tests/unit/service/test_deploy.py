"""Check that the image and compose file run the service as the operator expects."""

from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]


def _compose_service() -> dict[str, object]:
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    service: dict[str, object] = compose["services"]["memberlens"]
    return service


def test_compose_checks_health_on_readyz_as_a_non_root_user() -> None:
    service = _compose_service()

    assert "/readyz" in " ".join(service["healthcheck"]["test"])  # type: ignore[index]
    assert not str(service["user"]).startswith("0")
    assert service["read_only"] is True


def test_compose_mounts_the_bundles_read_only_and_takes_settings_from_env() -> None:
    service = _compose_service()
    environment: dict[str, str] = service["environment"]  # type: ignore[assignment]

    assert service["volumes"] == ["./bundles:/bundles:ro"]
    assert environment["MEMBERLENS_BUNDLE"] == "/bundles/bts"
    assert all(name.startswith("MEMBERLENS_") for name in environment)
    assert service["ports"] == ["127.0.0.1:8000:8000"]


@pytest.mark.parametrize(
    "line",
    ["USER 10001:10001", 'CMD ["memberlens", "serve"]', "MEMBERLENS_HOST=0.0.0.0"],
)
def test_dockerfile_runs_the_service_unprivileged(line: str) -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()

    assert line in dockerfile
    assert "/readyz" in dockerfile
