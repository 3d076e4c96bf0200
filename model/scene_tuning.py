"""Tune the image thresholds of a bundle's scene model, with the face thresholds, on valid photos.

Face cuts come first, tuned on the valid face chips of the prepared folder exactly as training
tunes them (strangers in the tuning set, a named stranger costing `stranger_cost` names). The
image cuts are then tuned member by member on the valid scene photos, given what the faces
already name: each member's cut is the one that maximises that member's F1 over the fused
answers, among the cuts that name the member in at most `stranger_budget` of the stranger
photos (ties go to the higher cut). Both are written to `thresholds.json` in one go.
"""

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from data_tools.errors import BundleLoadError, MemberlensError
from data_tools.faces import FaceDetector, MtcnnDetector
from model.bundle import Bundle, load_bundle
from model.fusion import NEVER_IMAGE_CUT, fused_sets, is_addition_allowed
from model.pipeline import Pipeline
from model.results import IdentifyResult
from model.scene_data import read_scene_photos, scene_targets
from model.thresholds import Thresholds, save_thresholds
from model.tuning import tune_bundle_cuts

logger = logging.getLogger(__name__)

DEFAULT_STRANGER_BUDGET = 0.02
NEVER = NEVER_IMAGE_CUT
_CUT_GRID = np.unique(np.concatenate([np.linspace(0.05, 0.99, 48), [0.5, NEVER]]))
_NO_LIMIT = 1 << 40


@dataclass(frozen=True)
class SceneAnswers:
    """The pipeline's answers on a set of scene photos, as arrays for tuning and evaluation.

    Attributes:
        rows: the scene photos' rows (image, kind, labels, boxes, degraded, ...).
        results: the pipeline's answer per photo (None where the photo could not be read).
        targets: (n_photos, n_members) labelled members.
        face_named: (n_photos, n_members) members named from faces.
        image_scores: (n_photos, n_members) scene-model probabilities (0 without a scene model).
        detected_faces: (n_photos,) faces the detector found.
        unnamed_faces: (n_photos,) of those, faces named nobody.
    """

    rows: pd.DataFrame
    results: list[IdentifyResult | None]
    targets: NDArray[np.bool_]
    face_named: NDArray[np.bool_]
    image_scores: NDArray[np.float32]
    detected_faces: NDArray[np.int64]
    unnamed_faces: NDArray[np.int64]

    @property
    def is_open(self) -> NDArray[np.bool_]:
        """Return (n_photos,): photos where the fusion rule lets the image add members."""
        return is_addition_allowed(self.detected_faces, self.unnamed_faces)

    @property
    def is_stranger_photo(self) -> NDArray[np.bool_]:
        """Return (n_photos,): photos of strangers only."""
        return np.asarray(self.rows["kind"].to_numpy() == "stranger", dtype=bool)


def answer_scene_photos(pipeline: Pipeline, scene_dir: Path, split: str) -> SceneAnswers:
    """Run the pipeline on every scene photo of one split and gather its answers."""
    roster = pipeline.bundle.roster
    rows = read_scene_photos(scene_dir, roster).split(split)
    results: list[IdentifyResult | None] = []
    face_named = np.zeros((len(rows), len(roster)), dtype=bool)
    image_scores = np.zeros((len(rows), len(roster)), dtype=np.float32)
    detected_faces = np.zeros(len(rows), dtype=np.int64)
    unnamed_faces = np.zeros(len(rows), dtype=np.int64)
    started = time.perf_counter()
    for row_number, image in enumerate(rows["image"]):
        try:
            result: IdentifyResult | None = pipeline.identify((scene_dir / image).read_bytes())
        except (OSError, MemberlensError):
            logger.warning("scene photo skipped", extra={"photo": image}, exc_info=True)
            result = None
        results.append(result)
        if result is None:
            continue
        detected_faces[row_number] = len(result["faces"])
        unnamed_faces[row_number] = sum(face["member"] is None for face in result["faces"])
        for member in result["members"]:
            if member["source"] == "face":
                face_named[row_number, roster.index(member["name"])] = True
        for name, score in result["image_scores"].items():
            image_scores[row_number, roster.index(name)] = score
    logger.info(
        "scene photos answered",
        extra={"photos": len(rows), "seconds": round(time.perf_counter() - started, 1)},
    )
    return SceneAnswers(
        rows,
        results,
        scene_targets(rows, roster),
        face_named,
        image_scores,
        detected_faces,
        unnamed_faces,
    )


def tune_image_cuts(
    roster: list[str],
    answers: SceneAnswers,
    *,
    stranger_budget: float,
    is_open: NDArray[np.bool_] | None = None,
) -> dict[str, float]:
    """Choose each member's image cut to maximise their F1 over the fused answers.

    Args:
        roster: member slugs, in label order.
        answers: the pipeline's answers on valid scene photos.
        stranger_budget: the largest share of stranger photos in which the scene model may add
            any member; each member gets an even share of it.
        is_open: (n_photos,) photos the image may add to; default, the fusion rule's own.

    Returns:
        One cut per member; `NEVER` (1.0) where no cut helps.
    """
    is_stranger = answers.is_stranger_photo
    is_open = answers.is_open if is_open is None else is_open
    per_member_budget = stranger_budget / max(1, len(roster))
    cuts: dict[str, float] = {}
    for index, member in enumerate(roster):
        scores = answers.image_scores[:, index]
        face_named = answers.face_named[:, index]
        actual = answers.targets[:, index]
        best_cut, best_f1 = NEVER, -1.0
        for cut in _CUT_GRID:
            added = (scores >= cut) & ~face_named & is_open & (cut < NEVER)
            if is_stranger.any() and added[is_stranger].mean() > per_member_budget:
                continue
            f1 = _f1(face_named | added, actual)
            if f1 >= best_f1:
                best_cut, best_f1 = float(cut), f1
        cuts[member] = best_cut
    logger.info("image thresholds tuned", extra={"cuts": cuts})
    return cuts


def retune_with_scene(
    bundle_dir: Path,
    prepared_dir: Path,
    scene_dir: Path | None,
    *,
    stranger_cost: float,
    stranger_budget: float = DEFAULT_STRANGER_BUDGET,
    detector: FaceDetector | None = None,
) -> Thresholds:
    """Retune a bundle's face cuts and, when it has a scene model, its image cuts; write both.

    Raises:
        BundleLoadError: the bundle has a scene model but no scene photos were given.
    """
    bundle = load_bundle(bundle_dir)
    if bundle.scene_model is not None and scene_dir is None:
        raise BundleLoadError(
            f"{bundle_dir} has a scene model: pass --scene-photos to tune its image cuts"
        )
    face_thresholds = tune_bundle_cuts(bundle, prepared_dir, stranger_cost=stranger_cost)
    if bundle.scene_model is None or scene_dir is None:
        save_thresholds(bundle_dir, face_thresholds)
        return face_thresholds
    thresholds = tune_scene_cuts(
        bundle, face_thresholds, scene_dir, stranger_budget=stranger_budget, detector=detector
    )
    save_thresholds(bundle_dir, thresholds)
    return thresholds


def tune_scene_cuts(
    bundle: Bundle,
    face_thresholds: Thresholds,
    scene_dir: Path,
    *,
    stranger_budget: float,
    detector: FaceDetector | None = None,
) -> Thresholds:
    """Tune image cuts on the valid scene photos with `face_thresholds` in force."""
    trial = dataclasses.replace(bundle, thresholds=dataclasses.replace(face_thresholds, image={}))
    pipeline = Pipeline(
        trial, detector or MtcnnDetector(), max_upload_bytes=_NO_LIMIT, max_pixels=_NO_LIMIT
    )
    answers = answer_scene_photos(pipeline, scene_dir, "valid")
    image_cuts = {
        member: round(cut, 4)
        for member, cut in tune_image_cuts(
            bundle.roster, answers, stranger_budget=stranger_budget
        ).items()
    }
    tuned_on: dict[str, Any] = {
        **face_thresholds.tuned_on,
        "scene_photos": len(answers.rows),
        "scene_stranger_photos": int(answers.is_stranger_photo.sum()),
        "stranger_budget": stranger_budget,
    }
    return dataclasses.replace(face_thresholds, image=image_cuts, tuned_on=tuned_on)


def fused_with(answers: SceneAnswers, image_cuts: dict[str, float], roster: list[str]) -> Any:
    """Return (n_photos, n_members) fused sets of `answers` under other image cuts."""
    cuts = np.array([image_cuts.get(member, NEVER) for member in roster], dtype=np.float32)
    return fused_sets(answers.face_named, answers.image_scores, cuts, is_open=answers.is_open)


def _f1(predicted: NDArray[np.bool_], actual: NDArray[np.bool_]) -> float:
    true_positives = int((predicted & actual).sum())
    total = int(predicted.sum()) + int(actual.sum())
    return 2 * true_positives / total if total else 1.0
