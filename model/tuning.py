"""Score a face model on the prepared valid faces and tune its cuts there: strict, then context."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from PIL import Image

from model.assign import NOBODY
from model.bundle import Bundle, load_bundle
from model.data import VALID, PreparedFaces, read_prepared, targets_of
from model.face_body import CHIP_SIZE_PX, chips_to_tensor
from model.face_model import FaceScorer, describe_crops
from model.fingerprint import fingerprint_file
from model.gallery import Gallery
from model.naming import tune_context
from model.thresholds import Thresholds, save_thresholds, tune_thresholds

logger = logging.getLogger(__name__)

# Stranger trials are drawn with their own fixed seed, apart from the training seed, so that
# retuning one bundle always meets the same trials.
TRIAL_SEED = 0


@dataclass(frozen=True)
class FaceScores:
    """A face model's answers on a set of prepared faces.

    Attributes:
        faces: the faces' rows of `faces.csv`.
        probabilities: (n_faces, n_members) face-model probabilities.
        similarities: (n_faces, n_members) similarity to each member's known faces.
        truth: (n_faces,) the labelled member index, `NOBODY` for a stranger.
    """

    faces: pd.DataFrame
    probabilities: NDArray[np.float32]
    similarities: NDArray[np.float32]
    truth: NDArray[np.int64]

    @property
    def photos(self) -> NDArray[np.object_]:
        """Return (n_faces,) the photo each face comes from."""
        photos: NDArray[np.object_] = self.faces["photo"].to_numpy(dtype=object)
        return photos


def describe_chips(
    model: FaceScorer, prepared: PreparedFaces, faces: pd.DataFrame
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Return the (n_faces, D) descriptors and (n_faces, n_members) probabilities of chips."""
    chips = np.zeros((len(faces), CHIP_SIZE_PX, CHIP_SIZE_PX, 3), dtype=np.uint8)
    for row_number, chip in enumerate(faces["chip"]):
        with Image.open(prepared.root / chip) as image:
            chips[row_number] = np.asarray(image.convert("RGB"))
    return describe_crops(model, chips_to_tensor(chips))


def split_faces(prepared: PreparedFaces, split: str = VALID) -> pd.DataFrame:
    """Return the prepared faces of one split, group and stranger faces alike."""
    return prepared.faces[prepared.faces["split"] == split]


def score_faces(
    model: FaceScorer, gallery: Gallery, prepared: PreparedFaces, faces: pd.DataFrame
) -> FaceScores:
    """Score prepared faces (rows of `faces.csv`) with a face model and its gallery."""
    descriptors, probabilities = describe_chips(model, prepared, faces)
    targets = targets_of(faces, prepared.roster)
    truth = np.where(targets.any(axis=1), targets.argmax(axis=1), NOBODY).astype(np.int64)
    return FaceScores(faces, probabilities, gallery.similarities(descriptors), truth)


def tune_cuts(roster: list[str], scores: FaceScores, *, stranger_cost: float) -> Thresholds:
    """Tune the shared face and gallery cuts, then the context cuts, on scored valid faces."""
    strict = tune_thresholds(
        roster,
        scores.probabilities,
        scores.similarities,
        scores.truth != NOBODY,
        stranger_cost=stranger_cost,
    )
    context = tune_context(
        roster,
        scores.photos,
        scores.probabilities,
        scores.similarities,
        scores.truth,
        strict,
        stranger_cost=stranger_cost,
        seed=TRIAL_SEED,
    )
    tuned_on: dict[str, Any] = {**strict.tuned_on, "stranger_trials_seed": TRIAL_SEED}
    return Thresholds(strict.face, strict.gallery, {}, tuned_on, context)


def tune_bundle_cuts(bundle: Bundle, prepared_dir: Path, *, stranger_cost: float) -> Thresholds:
    """Tune a bundle's face cuts on the valid faces of a prepared folder, as training does.

    The prepared folder should be the one the bundle was trained on: with another split, faces
    it trained on could end up in the tuning set. A differing fingerprint is logged as a warning.
    """
    prepared = read_prepared(prepared_dir, bundle.roster)
    trained_on = bundle.manifest.get("training", {}).get("data_fingerprint")
    if trained_on != fingerprint_file(prepared.root / "faces.csv"):
        logger.warning(
            "prepared faces differ from the ones the bundle was trained on",
            extra={"bundle": str(bundle.path), "prepared": str(prepared_dir)},
        )
    scores = score_faces(bundle.face_model, bundle.gallery, prepared, split_faces(prepared))
    return tune_cuts(bundle.roster, scores, stranger_cost=stranger_cost)


def retune_thresholds(bundle_dir: Path, prepared_dir: Path, *, stranger_cost: float) -> Thresholds:
    """Retune a bundle's face cuts on the valid split and rewrite its thresholds atomically."""
    thresholds = tune_bundle_cuts(
        load_bundle(bundle_dir), prepared_dir, stranger_cost=stranger_cost
    )
    save_thresholds(bundle_dir, thresholds)
    return thresholds
