"""Prove that the PyTorch port of dlib's face descriptor gives dlib's descriptors on real faces.

dlib (the `dlib-bin` test dependency) makes the aligned chips with its own detector and 5-point
landmarks, and computes the reference descriptors.
"""

from pathlib import Path

import dlib
import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from PIL import Image

from model.face_body import (
    DESCRIPTOR_SIZE,
    DlibFaceBody,
    chips_to_tensor,
    default_weights_path,
    load_dlib_face_body,
)

LFW_DIR = Path("/work/shared/datasets/strangers/lfw")
PEOPLE = ("Colin_Powell", "Jennifer_Capriati", "Tony_Blair")
PHOTOS_PER_PERSON = 2
MIN_COSINE = 0.999


@pytest.fixture(scope="module")
def chips_by_person() -> dict[str, list[NDArray[np.uint8]]]:
    """Return aligned 150x150 RGB chips, made by dlib, of the first photos of each person."""
    models_dir = default_weights_path().parent
    detector = dlib.get_frontal_face_detector()
    landmarker = dlib.shape_predictor(str(models_dir / "shape_predictor_5_face_landmarks.dat"))
    chips: dict[str, list[NDArray[np.uint8]]] = {}
    for person in PEOPLE:
        paths = sorted((LFW_DIR / person).glob("*.jpg"))[:PHOTOS_PER_PERSON]
        chips[person] = [_aligned_chip(path, detector, landmarker) for path in paths]
    return chips


@pytest.fixture(scope="module")
def body() -> DlibFaceBody:
    return load_dlib_face_body().eval()


def test_port_gives_dlib_descriptors_on_real_faces(
    body: DlibFaceBody, chips_by_person: dict[str, list[NDArray[np.uint8]]]
) -> None:
    chips = np.stack([chip for person in PEOPLE for chip in chips_by_person[person]])
    recognizer = dlib.face_recognition_model_v1(str(default_weights_path()))

    expected = np.array([recognizer.compute_face_descriptor(chip) for chip in chips])
    with torch.no_grad():
        found = body(chips_to_tensor(chips)).numpy()

    assert found.shape == (len(chips), DESCRIPTOR_SIZE)
    cosines = np.sum(found * expected, axis=1) / (
        np.linalg.norm(found, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosines.min() >= MIN_COSINE, f"cosine similarities {np.round(cosines, 6)}"


def test_same_person_is_closer_than_different_people(
    body: DlibFaceBody, chips_by_person: dict[str, list[NDArray[np.uint8]]]
) -> None:
    with torch.no_grad():
        descriptors = {
            person: body(chips_to_tensor(np.stack(chips))).numpy()
            for person, chips in chips_by_person.items()
        }

    for person, own in descriptors.items():
        same = np.linalg.norm(own[0] - own[1])
        others = np.concatenate([d for other, d in descriptors.items() if other != person])
        nearest_other = np.linalg.norm(others - own[0], axis=1).min()
        assert same < nearest_other, f"{person}: same {same:.3f}, other {nearest_other:.3f}"


def test_every_parameter_of_the_loaded_body_gets_a_gradient(
    body: DlibFaceBody, chips_by_person: dict[str, list[NDArray[np.uint8]]]
) -> None:
    chips = chips_to_tensor(np.stack(chips_by_person[PEOPLE[0]]))
    body.zero_grad()

    body(chips).pow(2).sum().backward()

    missing = [name for name, p in body.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    body.zero_grad(set_to_none=True)


def _aligned_chip(
    path: Path, detector: dlib.fhog_object_detector, landmarker: dlib.shape_predictor
) -> NDArray[np.uint8]:
    """Align the detected face nearest the photo centre (LFW centres the named person)."""
    photo = np.asarray(Image.open(path).convert("RGB"))
    boxes = detector(photo, 1)
    assert len(boxes) > 0, f"dlib found no face in {path}"
    centre = np.array(photo.shape[1::-1]) / 2
    box = min(boxes, key=lambda b: np.linalg.norm([b.center().x, b.center().y] - centre))
    chip = dlib.get_face_chip(photo, landmarker(photo, box), size=150, padding=0.25)
    return np.asarray(chip, dtype=np.uint8)
