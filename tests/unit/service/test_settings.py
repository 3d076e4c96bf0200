"""Test that the service settings come from MEMBERLENS_* variables and refuse bad values."""

import pytest
from pydantic import ValidationError

from service.app import effective_torch_threads
from service.auth import hash_api_key
from service.settings import ConcurrencySettings, Settings


def test_nested_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERLENS_CONCURRENCY__WORKERS", "2")
    monkeypatch.setenv("MEMBERLENS_CONCURRENCY__QUEUE_SIZE", "3")
    monkeypatch.setenv("MEMBERLENS_RELOAD__INTERVAL_S", "0")
    monkeypatch.setenv("MEMBERLENS_LIMITS__MAX_BATCH_PHOTOS", "5")

    settings = Settings()

    assert (settings.concurrency.workers, settings.concurrency.queue_size) == (2, 3)
    assert settings.reload.interval_s == 0
    assert settings.limits.max_batch_photos == 5


@pytest.mark.parametrize("separator", [",", ", "])
def test_api_key_hashes_may_be_comma_separated(
    monkeypatch: pytest.MonkeyPatch, separator: str
) -> None:
    hashes = [hash_api_key("one"), hash_api_key("two").upper().replace("SHA256", "sha256")]
    monkeypatch.setenv("MEMBERLENS_AUTH__API_KEY_HASHES", separator.join(hashes))

    settings = Settings()

    assert settings.auth.api_key_hashes == [hash_api_key("one"), hash_api_key("two")]


def test_api_key_hashes_may_be_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERLENS_AUTH__API_KEY_HASHES", f'["{hash_api_key("one")}"]')

    assert Settings().auth.api_key_hashes == [hash_api_key("one")]


def test_a_plain_key_in_place_of_a_hash_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERLENS_AUTH__API_KEY_HASHES", "my-secret-key")

    with pytest.raises(ValidationError, match="sha256"):
        Settings()


def test_zero_workers_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERLENS_CONCURRENCY__WORKERS", "0")

    with pytest.raises(ValidationError):
        Settings()


def test_torch_threads_share_the_cores_but_one_between_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.delenv("MEMBERLENS_TORCH_THREADS", raising=False)

    one_worker = effective_torch_threads(Settings(concurrency=ConcurrencySettings(workers=1)))
    two_workers = effective_torch_threads(Settings(concurrency=ConcurrencySettings(workers=2)))
    more_workers = effective_torch_threads(Settings(concurrency=ConcurrencySettings(workers=8)))
    fixed = effective_torch_threads(Settings(torch_threads=3))

    assert (one_worker, two_workers, more_workers, fixed) == (3, 1, 1, 3)
