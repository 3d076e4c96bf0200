"""Score face-only, scene-only and fused answers side by side on the same scene photos.

The scene photos (from `memberlens scene-photos`) of the valid split hold whole group photos,
degraded copies of them, crops with 1 to 4 (and more) members, collages and strangers; each
carries its labelled head boxes, so per-face figures come out of the same run.
"""

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from data_tools.matching import match_faces
from model.fusion import NEVER_IMAGE_CUT, fused_sets
from model.metrics import precision_recall
from model.pipeline import Pipeline, load_pipeline
from model.scene_data import labelled_boxes
from model.scene_tuning import SceneAnswers, answer_scene_photos, lifted_answers

logger = logging.getLogger(__name__)

NOBODY_LABEL = "nobody"
MISSED_LABEL = "missed"
VARIANTS = ("face_only", "scene_only", "fused")
# The veto rule measured beside the pipeline's: a member named from a face is dropped when the
# scene model gives them less than this.
VETO_IMAGE_SCORE = 0.02
_THRESHOLD_GRID = np.linspace(0.02, 0.98, 49)
_NO_LIMIT = 1 << 40
_COLUMN = 20


def evaluate_scene_photos(
    bundle_dir: Path, scene_dir: Path, *, split: str, plots_dir: Path | None
) -> dict[str, Any]:
    """Run the pipeline on one split's scene photos and compare the three answers.

    Raises:
        DatasetError: the scene folder is missing or names someone outside the roster.
        BundleLoadError: the bundle cannot be loaded.
    """
    loaded = load_pipeline(bundle_dir, max_upload_bytes=_NO_LIMIT, max_pixels=_NO_LIMIT)
    roster = loaded.bundle.roster
    thresholds = loaded.current_thresholds()
    # Answered with no face lifted, so that the face-only answer is the faces' own; the lift
    # cuts are applied afterwards exactly as the pipeline applies them (model.scene_tuning).
    pipeline = Pipeline(
        dataclasses.replace(loaded.bundle, thresholds=dataclasses.replace(thresholds, lift=None)),
        loaded.detector,
        max_upload_bytes=_NO_LIMIT,
        max_pixels=_NO_LIMIT,
        follow_thresholds_file=False,
    )
    unlifted = answer_scene_photos(pipeline, scene_dir, split)
    cuts = np.array([thresholds.image.get(m, NEVER_IMAGE_CUT) for m in roster], np.float32)
    answers = lifted_answers(unlifted, roster, cuts, thresholds.lift)
    no_faces = np.zeros_like(unlifted.face_named)
    # The pipeline's own rule (model.fusion): lifts, then additions only where faces leave room.
    fused = fused_sets(answers.face_named, answers.image_scores, cuts, is_open=answers.is_open)
    without_lift = fused_sets(
        unlifted.face_named, unlifted.image_scores, cuts, is_open=unlifted.is_open
    )
    predictions = {
        "face_only": unlifted.face_named,
        "scene_only": fused_sets(no_faces, unlifted.image_scores, cuts),
        "fused": fused,
        "fused_without_lift": without_lift,
        "fused_with_veto": fused
        & ~(answers.face_named & (answers.image_scores < VETO_IMAGE_SCORE)),
    }
    if pipeline.bundle.scene_model is None:
        predictions = {"face_only": answers.face_named}
    groups = photo_groups(answers)
    report: dict[str, Any] = {
        "split": split,
        "photos": len(answers.rows),
        "has_scene_model": pipeline.bundle.scene_model is not None,
        "image_thresholds": thresholds.image,
        "lift": thresholds.lift.to_json() if thresholds.lift else None,
        "variants": {
            name: variant_figures(predicted, answers.targets, roster, groups)
            for name, predicted in predictions.items()
        },
        "faces": face_figures(answers, roster),
        "f1_by_threshold": f1_by_threshold(answers, roster),
        "pipeline_agrees_with_fused": _agreement(unlifted, without_lift, roster),
    }
    if plots_dir is not None:
        from model.evaluate_plots import write_plots

        report["plots"] = [str(path) for path in write_plots(report, roster, plots_dir)]
    return report


def photo_groups(answers: SceneAnswers) -> dict[str, NDArray[np.bool_]]:
    """Return the photo subsets figures are broken down by, as (n_photos,) masks."""
    kinds = answers.rows["kind"].to_numpy()
    degraded = answers.rows["degraded"].to_numpy() != ""
    n_members = answers.targets.sum(axis=1)
    is_crop = kinds == "crop"
    groups = {
        "all": np.ones(len(kinds), dtype=bool),
        "whole_clean": (kinds == "whole") & ~degraded,
        "whole_degraded": (kinds == "whole") & degraded,
        "crops_1_to_4": is_crop & (n_members >= 1) & (n_members <= 4),
        "crops_1_to_4_clean": is_crop & (n_members >= 1) & (n_members <= 4) & ~degraded,
        "crops_1_to_4_degraded": is_crop & (n_members >= 1) & (n_members <= 4) & degraded,
        "crops_5_plus": is_crop & (n_members >= 5),
        "collages": kinds == "collage",
        "strangers": kinds == "stranger",
        "degraded": degraded,
    }
    for size in range(1, 5):
        groups[f"crops_{size}"] = is_crop & (n_members == size)
    return groups


def variant_figures(
    predicted: NDArray[np.bool_],
    targets: NDArray[np.bool_],
    roster: list[str],
    groups: dict[str, NDArray[np.bool_]],
) -> dict[str, Any]:
    """Return member-level figures of one answer over all photos and per group of photos."""
    return {
        "per_member": precision_recall(predicted, targets, roster),
        "by_group": {
            name: set_figures(predicted[mask], targets[mask]) for name, mask in groups.items()
        },
    }


def set_figures(predicted: NDArray[np.bool_], targets: NDArray[np.bool_]) -> dict[str, Any]:
    """Return exact-set rate, accuracy_multi and member-level micro P/R/F1 over photos."""
    if len(predicted) == 0:
        return {"photos": 0}
    true_positives = int((predicted & targets).sum())
    named, actual = int(predicted.sum()), int(targets.sum())
    precision = true_positives / named if named else 1.0
    recall = true_positives / actual if actual else 1.0
    return {
        "photos": len(predicted),
        "exact_set_rate": round(float((predicted == targets).all(axis=1).mean()), 4),
        "accuracy_multi": round(float((predicted == targets).mean()), 4),
        "member_precision": round(precision, 4),
        "member_recall": round(recall, 4),
        "member_f1": round(2 * true_positives / (named + actual), 4) if named + actual else 1.0,
        "photos_naming_anyone": round(float(predicted.any(axis=1).mean()), 4),
    }


def face_figures(answers: SceneAnswers, roster: list[str]) -> dict[str, Any]:
    """Return per-face accuracy, stranger faces named, and the face-level confusion matrix.

    Rows are the truth: each member, then `nobody` for faces on stranger photos. Columns are
    the answer: each member, `nobody` for a face named nobody, and `missed` for a labelled face
    the detector did not find. Faces on member photos that match no labelled head (crowds,
    staff) are left out: their truth is unknown.
    """
    labels = [*roster, NOBODY_LABEL, MISSED_LABEL]
    column = {label: index for index, label in enumerate(labels)}
    matrix = np.zeros((len(roster) + 1, len(labels)), dtype=np.int64)
    is_stranger = answers.is_stranger_photo
    for row_number, result in enumerate(answers.results):
        if result is None:
            continue
        faces = result["faces"]
        if is_stranger[row_number]:
            for face in faces:
                matrix[len(roster), column[face["member"] or NOBODY_LABEL]] += 1
            continue
        heads = labelled_boxes(answers.rows.iloc[row_number])
        detections = [
            (f["box"]["x_min"], f["box"]["y_min"], f["box"]["x_max"], f["box"]["y_max"])
            for f in faces
        ]
        matching = match_faces([box for _, box in heads], detections)
        found = {match.labelled_index: match.detection_index for match in matching.matches}
        for head_index, (member, _) in enumerate(heads):
            detection = found.get(head_index)
            answer = MISSED_LABEL if detection is None else faces[detection]["member"]
            matrix[roster.index(member), column[answer or NOBODY_LABEL]] += 1
    member_rows = matrix[: len(roster)]
    labelled = int(member_rows.sum())
    stranger_faces = int(matrix[len(roster)].sum())
    stranger_named = int(matrix[len(roster), : len(roster)].sum())
    return {
        "labelled_faces": labelled,
        "per_face_accuracy": round(float(np.trace(member_rows[:, : len(roster)]) / labelled), 4)
        if labelled
        else None,
        "stranger_faces": stranger_faces,
        "stranger_faces_named": stranger_named,
        "share_stranger_faces_named": round(stranger_named / stranger_faces, 4)
        if stranger_faces
        else None,
        "confusion": {
            "rows": [*roster, NOBODY_LABEL],
            "columns": labels,
            "counts": matrix.tolist(),
        },
    }


def f1_by_threshold(answers: SceneAnswers, roster: list[str]) -> dict[str, Any]:
    """Return each member's scene-only and fused F1 at image cuts across [0.02, 0.98]."""
    curves: dict[str, Any] = {"thresholds": [round(float(t), 3) for t in _THRESHOLD_GRID]}
    for index, member in enumerate(roster):
        scores = answers.image_scores[:, index][:, None]
        actual = answers.targets[:, index][:, None]
        by_image = scores >= _THRESHOLD_GRID[None, :]
        fused = (by_image & answers.is_open[:, None]) | answers.face_named[:, index][:, None]
        curves[member] = {
            "scene_only": [round(value, 4) for value in _f1_columns(by_image, actual)],
            "fused": [round(value, 4) for value in _f1_columns(fused, actual)],
        }
    return curves


def format_scene_report(report: dict[str, Any]) -> str:
    """Render the side-by-side figures as a short table."""
    variants = report["variants"]
    names = list(variants)
    lines = [
        f"scene photos ({report['split']}): {report['photos']} photos",
        f"  {'photos':<24}{'figure':<18}" + "".join(f"{name:>{_COLUMN}}" for name in names),
    ]
    for group in (
        "all",
        "crops_1_to_4",
        "crops_1_to_4_clean",
        "crops_1_to_4_degraded",
        "whole_clean",
        "whole_degraded",
        "collages",
    ):
        for figure in ("exact_set_rate", "member_f1", "accuracy_multi"):
            values = [variants[name]["by_group"][group].get(figure) for name in names]
            cells = "".join(_cell(value) for value in values)
            lines.append(f"  {group:<24}{figure:<18}{cells}")
    strangers = [
        variants[name]["by_group"]["strangers"].get("photos_naming_anyone") for name in names
    ]
    lines.append(
        f"  {'strangers':<24}{'photos named':<18}" + "".join(_cell(value) for value in strangers)
    )
    faces = report["faces"]
    lines.append(
        f"  per-face accuracy {faces['per_face_accuracy']}  "
        f"stranger faces named {faces['stranger_faces_named']}/{faces['stranger_faces']}"
    )
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return f"{value:>{_COLUMN}.4f}" if value is not None else f"{'-':>{_COLUMN}}"


def _agreement(answers: SceneAnswers, fused: NDArray[np.bool_], roster: list[str]) -> float:
    """Return the share of photos whose answer names exactly the members the fused sets hold.

    The fused sets are recomputed from arrays for every variant; this checks that they are the
    rule the pipeline itself applied (without lifts, as it ran here; a unit test checks that
    the pipeline's lifts are those of `model.scene_tuning.lifted_answers`).
    """
    same = [
        {member["name"] for member in result["members"]}
        == {roster[index] for index in np.flatnonzero(fused[row])}
        for row, result in enumerate(answers.results)
        if result is not None
    ]
    return round(sum(same) / len(same), 4) if same else 1.0


def _f1_columns(predicted: NDArray[np.bool_], actual: NDArray[np.bool_]) -> list[float]:
    true_positives = (predicted & actual).sum(axis=0)
    total = predicted.sum(axis=0) + actual.sum(axis=0)
    return [float(2 * tp / n) if n else 1.0 for tp, n in zip(true_positives, total, strict=True)]
