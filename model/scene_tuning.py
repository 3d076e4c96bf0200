"""Tune the image thresholds of a bundle's scene model, with the face thresholds, on valid photos.

Face cuts come first, tuned on the valid face chips of the prepared folder exactly as training
tunes them (strangers in the tuning set, a named stranger costing `stranger_cost` names). The
image cuts are then tuned member by member on the valid scene photos, given what the faces
already name: each member's cut is the one that maximises that member's F1 over the fused
answers, among the cuts that name the member in at most `stranger_budget` of the stranger
photos (ties go to the higher cut). Last come the lift cuts (`tune_lift`), under which the
scene model names a face its own cuts refused. All are written to `thresholds.json` in one go.
"""

import dataclasses
import logging
import time
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from data_tools.errors import BundleLoadError, MemberlensError
from data_tools.faces import FaceDetector, MtcnnDetector
from model.assign import NOBODY
from model.bundle import Bundle, load_bundle
from model.fusion import NEVER_IMAGE_CUT, fused_sets, is_addition_allowed, lift_faces
from model.pipeline import Pipeline
from model.results import FaceDict, IdentifyResult
from model.scene_data import read_scene_photos, scene_targets
from model.thresholds import LiftCuts, Thresholds, save_thresholds
from model.tuning import tune_bundle_cuts

logger = logging.getLogger(__name__)

DEFAULT_STRANGER_BUDGET = 0.02
NEVER = NEVER_IMAGE_CUT
_CUT_GRID = np.unique(np.concatenate([np.linspace(0.05, 0.99, 48), [0.5, NEVER]]))
_NO_LIMIT = 1 << 40
_LIFT_FACE_GRID = (0.1, 0.15, 0.2, 0.25, 0.3)
_LIFT_SHARE_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


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
        face_probabilities: per photo, (n_faces, n_members) face-model probabilities, as the
            answers' candidates give them (4 decimals; the pipeline lifts on the same).
        face_assigned: per photo, (n_faces,) member index per face, or `NOBODY`.
    """

    rows: pd.DataFrame
    results: list[IdentifyResult | None]
    targets: NDArray[np.bool_]
    face_named: NDArray[np.bool_]
    image_scores: NDArray[np.float32]
    detected_faces: NDArray[np.int64]
    unnamed_faces: NDArray[np.int64]
    face_probabilities: list[NDArray[np.float32]]
    face_assigned: list[NDArray[np.int64]]

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
    face_probabilities: list[NDArray[np.float32]] = []
    face_assigned: list[NDArray[np.int64]] = []
    started = time.perf_counter()
    for row_number, image in enumerate(rows["image"]):
        try:
            # Every member as a candidate: the lift rule needs each face's full probabilities.
            result: IdentifyResult | None = pipeline.identify(
                (scene_dir / image).read_bytes(), top_k=len(roster)
            )
        except (OSError, MemberlensError):
            logger.warning("scene photo skipped", extra={"photo": image}, exc_info=True)
            result = None
        results.append(result)
        probabilities, assigned = face_arrays(result, roster)
        face_probabilities.append(probabilities)
        face_assigned.append(assigned)
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
        face_probabilities,
        face_assigned,
    )


def face_arrays(
    result: IdentifyResult | None, roster: list[str]
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Return one answer's (n_faces, n_members) probabilities and (n_faces,) member indices.

    Probabilities come from the faces' candidates (0 for a member not listed); a face named
    nobody has `NOBODY`.
    """
    faces = result["faces"] if result is not None else []
    probabilities = np.zeros((len(faces), len(roster)), dtype=np.float32)
    assigned = np.full(len(faces), NOBODY, dtype=np.int64)
    for row, face in enumerate(faces):
        for candidate in face["candidates"]:
            probabilities[row, roster.index(candidate["name"])] = candidate["score"]
        if face["member"] is not None:
            assigned[row] = roster.index(face["member"])
    return probabilities, assigned


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
    no_scene = dataclasses.replace(face_thresholds, image={}, lift=None)
    trial = dataclasses.replace(bundle, thresholds=no_scene)
    pipeline = Pipeline(
        trial,
        detector or MtcnnDetector(),
        max_upload_bytes=_NO_LIMIT,
        max_pixels=_NO_LIMIT,
        follow_thresholds_file=False,
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
    lift = tune_lift(bundle.roster, answers, image_cuts)
    return dataclasses.replace(face_thresholds, image=image_cuts, tuned_on=tuned_on, lift=lift)


def fused_answers(
    answers: SceneAnswers, roster: list[str], cuts: NDArray[np.float32], lift: LiftCuts | None
) -> NDArray[np.bool_]:
    """Apply the pipeline's whole rule to answers given without lifts: lift, gate, add.

    Args:
        answers: the pipeline's answers, with no face lifted.
        roster: member slugs, in label order.
        cuts: (n_members,) image thresholds.
        lift: the lift cuts; None lifts nothing.
    """
    lifted = lifted_answers(answers, roster, cuts, lift)
    return fused_sets(lifted.face_named, lifted.image_scores, cuts, is_open=lifted.is_open)


def lifted_answers(
    answers: SceneAnswers, roster: list[str], cuts: NDArray[np.float32], lift: LiftCuts | None
) -> SceneAnswers:
    """Return `answers` (given without lifts) with the faces the lift cuts name, named.

    The faces of the results are copied where a face is lifted, so that per-face figures count
    it under its lifted member; the results' `members` lists are left as answered.
    """
    if lift is None:
        return answers
    face_named = answers.face_named.copy()
    unnamed = answers.unnamed_faces.copy()
    results = list(answers.results)
    assigned_by_photo = []
    for row, (probabilities, assigned) in enumerate(
        zip(answers.face_probabilities, answers.face_assigned, strict=True)
    ):
        lifted = lift_faces(probabilities, assigned, answers.image_scores[row], cuts, lift)
        assigned_by_photo.append(lifted)
        changed = np.flatnonzero(lifted != assigned)
        if not changed.size:
            continue
        face_named[row, lifted[changed]] = True
        unnamed[row] = int((lifted == NOBODY).sum())
        result = results[row]
        if result is not None:
            faces = [FaceDict(**face) for face in result["faces"]]
            for face_row in changed:
                faces[face_row]["member"] = roster[int(lifted[face_row])]
            results[row] = IdentifyResult(**{**result, "faces": faces})
    return dataclasses.replace(
        answers,
        results=results,
        face_named=face_named,
        unnamed_faces=unnamed,
        face_assigned=assigned_by_photo,
    )


def tune_lift(
    roster: list[str], answers: SceneAnswers, image_cuts: dict[str, float]
) -> LiftCuts | None:
    """Choose the lift cuts that raise member F1 most without naming more members in strangers.

    Each candidate is scored by member F1 over all the answers, fused as the pipeline fuses.
    A candidate must name no more members, summed over the stranger photos, than the rule
    without lifts, and must beat it; ties go to the stricter cuts. None when none beats it.
    """
    cuts = np.array([image_cuts.get(member, NEVER) for member in roster], dtype=np.float32)
    is_stranger = answers.is_stranger_photo

    def figures(lift: LiftCuts | None) -> tuple[float, int]:
        fused = fused_answers(answers, roster, cuts, lift)
        return _f1(fused, answers.targets), int(fused[is_stranger].sum())

    best: LiftCuts | None = None
    best_f1, stranger_members = figures(None)
    for face_cut, image_share in product(
        sorted(_LIFT_FACE_GRID, reverse=True), sorted(_LIFT_SHARE_GRID, reverse=True)
    ):
        lift = LiftCuts(face_cut, image_share)
        f1, strangers = figures(lift)
        if strangers <= stranger_members and f1 > best_f1:
            best, best_f1 = lift, f1
    logger.info(
        "lift cuts tuned",
        extra={"lift": best.to_json() if best else None, "member_f1": round(best_f1, 4)},
    )
    return best


def _f1(predicted: NDArray[np.bool_], actual: NDArray[np.bool_]) -> float:
    true_positives = int((predicted & actual).sum())
    total = int(predicted.sum()) + int(actual.sum())
    return 2 * true_positives / total if total else 1.0
