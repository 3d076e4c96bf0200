"""Shared, expensive fixtures of the integration tests: a small prepared set and a bundle.

They read the real photos in place from ../shared/datasets. Both are cached under
`.cache/tests/` keyed by the code and parameters that made them, so a second local run skips
the work; CI starts from a clean clone and builds them once per run.
"""

import hashlib
import shutil
from pathlib import Path

import pytest

from service.cli import main as memberlens

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASETS = REPO_ROOT.parent / "shared" / "datasets"
GROUP_PHOTOS = DATASETS / "bts-group-photos"
STRANGERS = DATASETS / "strangers"
CACHE_ROOT = REPO_ROOT / ".cache" / "tests"

# A subset big enough to learn seven members and small enough for the default test run.
SUBSET_PHOTOS = 70
SUBSET_STRANGER_PHOTOS_PER_PERSON = 10
PREPARE_ARGS = [
    "--photos", str(GROUP_PHOTOS), "--strangers", str(STRANGERS), "--seed", "0",
    "--limit-photos", str(SUBSET_PHOTOS),
    "--max-stranger-photos-per-person", str(SUBSET_STRANGER_PHOTOS_PER_PERSON),
]
TRAIN_ARGS = ["--seed", "0", "--head-epochs", "2", "--epochs", "6", "--name", "test-small"]


def _code_digest(*packages: str) -> str:
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cached(kind: str, key: str) -> Path:
    return CACHE_ROOT / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not GROUP_PHOTOS.is_dir():
        pytest.fail(f"the shared photos are missing at {DATASETS}; tests read them in place")
    return DATASETS


@pytest.fixture(scope="session")
def small_prepared(datasets: Path) -> Path:
    """Faces of a subset of the group photos and strangers, prepared once per code version."""
    out = _cached("prepared", _code_digest("data_tools") + " ".join(PREPARE_ARGS))
    if not (out / "faces.csv").is_file():
        shutil.rmtree(out, ignore_errors=True)
        assert memberlens(["prepare", *PREPARE_ARGS, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def small_bundle(small_prepared: Path) -> Path:
    """A bundle trained on the small prepared set, once per code version."""
    key = _code_digest("data_tools", "model") + str(small_prepared) + " ".join(TRAIN_ARGS)
    out = _cached("bundle", key)
    if not (out / "manifest.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        arguments = ["train", "--prepared", str(small_prepared), "--out", str(out), *TRAIN_ARGS]
        assert memberlens(arguments) == 0
    return out
