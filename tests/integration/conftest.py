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


# Scene photos of the small subset: crops of 1 to 4 members, collages, strangers, degraded
# copies; few enough that training the scene model on them takes about a minute.
SCENE_PHOTO_ARGS = [
    "--seed", "0", "--train-crops-per-photo", "4", "--valid-crops-per-photo", "4",
    "--train-collages", "40", "--valid-collages", "5",
    "--train-strangers", "60", "--valid-strangers", "40",
]
SCENE_TRAIN_ARGS = [
    "--seed", "0", "--size", "128", "--head-epochs", "1", "--epochs", "2",
    "--name", "test-small-scene",
]


@pytest.fixture(scope="session")
def small_scene_photos(small_prepared: Path) -> Path:
    """Scene photos made from the small prepared set, once per code version."""
    key = _code_digest("data_tools") + str(small_prepared) + " ".join(SCENE_PHOTO_ARGS)
    out = _cached("scene-photos", key)
    if not (out / "scene.csv").is_file():
        shutil.rmtree(out, ignore_errors=True)
        arguments = ["scene-photos", "--prepared", str(small_prepared), "--out", str(out)]
        assert memberlens([*arguments, *SCENE_PHOTO_ARGS]) == 0
    return out


@pytest.fixture(scope="session")
def small_scene_bundle(small_bundle: Path, small_scene_photos: Path) -> Path:
    """The small bundle with a scene model trained on the small scene photos."""
    key = (
        _code_digest("data_tools", "model")
        + str(small_bundle)
        + str(small_scene_photos)
        + " ".join(SCENE_TRAIN_ARGS)
    )
    out = _cached("scene-bundle", key)
    if not (out / "manifest.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        arguments = [
            "scene-train", "--scene-photos", str(small_scene_photos),
            "--face-bundle", str(small_bundle), "--out", str(out), *SCENE_TRAIN_ARGS,
        ]
        assert memberlens(arguments) == 0
    return out
