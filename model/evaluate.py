"""Measure a bundle on photos it never trained on, through the same pipeline the service runs."""

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from data_tools.errors import DatasetError, MemberlensError
from data_tools.matching import match_faces
from data_tools.prepare import STRANGER_SOURCE
from model.bundle import Bundle
from model.data import FACES_FILE, PHOTOS_FILE, read_prepared
from model.naming import MAX_TRIAL_MEMBERS, stranger_trials, strangers_named_among_members
from model.pipeline import Pipeline, load_pipeline
from model.results import IdentifyResult
from model.thresholds import Thresholds
from model.tuning import TRIAL_SEED, score_faces

logger = logging.getLogger(__name__)

_NO_BYTE_LIMIT = 1 << 40


@dataclass(frozen=True)
class LabelledFace:
    """A hand-labelled face box of a photo."""

    member: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class PhotoScore:
    """How one answer compares with a photo's labels."""

    labelled_faces: int
    faces_named_right: int
    true_members: frozenset[str]
    named_members: frozenset[str]

    @property
    def precision(self) -> float:
        """Share of named members that are in the photo (1 when nobody was named)."""
        if not self.named_members:
            return 1.0
        return len(self.named_members & self.true_members) / len(self.named_members)

    @property
    def recall(self) -> float:
        """Share of the photo's members that were named (1 when the photo has none)."""
        if not self.true_members:
            return 1.0
        return len(self.named_members & self.true_members) / len(self.true_members)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def score_photo(labelled: list[LabelledFace], result: IdentifyResult) -> PhotoScore:
    """Compare one answer with a photo's labelled faces.

    A labelled face counts as named right only when a detected face matches its box and that
    face was named as the labelled member: a missed face counts as wrong.
    """
    detections = [
        (face["box"]["x_min"], face["box"]["y_min"], face["box"]["x_max"], face["box"]["y_max"])
        for face in result["faces"]
    ]
    matching = match_faces([face.box for face in labelled], detections)
    named_right = sum(
        1
        for match in matching.matches
        if result["faces"][match.detection_index]["member"] == labelled[match.labelled_index].member
    )
    return PhotoScore(
        labelled_faces=len(labelled),
        faces_named_right=named_right,
        true_members=frozenset(face.member for face in labelled),
        named_members=frozenset(member["name"] for member in result["members"]),
    )


def evaluate_bundle(
    bundle_dir: Path, prepared_dir: Path, *, split: str, stranger_split: str, max_pixels: int
) -> dict[str, Any]:
    """Run the pipeline on one split's group photos and on stranger photos; return the report.

    Raises:
        DatasetError: the prepared folder lacks its photos or faces file, or the split is empty.
    """
    pipeline = load_pipeline(bundle_dir, max_upload_bytes=_NO_BYTE_LIMIT, max_pixels=max_pixels)
    group_photos = _group_photos(prepared_dir, split)
    stranger_photos = _stranger_photos(prepared_dir, stranger_split)

    started = time.perf_counter()
    scores = [
        score_photo(labelled, result)
        for labelled, result in (
            (labelled, _identify(pipeline, path)) for path, labelled in group_photos
        )
        if result is not None
    ]
    group_seconds = time.perf_counter() - started
    strangers = _stranger_figures(pipeline, stranger_photos)
    thresholds = pipeline.current_thresholds()
    strangers["among_members"] = strangers_among_members(
        pipeline.bundle, thresholds, prepared_dir, split=split, stranger_split=stranger_split
    )
    report = {
        "bundle": pipeline.bundle.name,
        "thresholds": thresholds.digest(),
        "split": split,
        "group_photos": summarise_scores(scores),
        "strangers": {"split": stranger_split, **strangers},
        "seconds_per_group_photo": round(group_seconds / max(1, len(group_photos)), 3),
    }
    logger.info("evaluation finished", extra={"report": report})
    return report


def strangers_among_members(
    bundle: Bundle, thresholds: Thresholds, prepared_dir: Path, *, split: str, stranger_split: str
) -> dict[str, Any]:
    """Place each stranger face among one to four members of a photo; report the share named.

    A stranger beside members is the case the context cuts risk naming. The faces are the
    prepared chips, each stranger's set drawn from the group photos of `split`, and named as
    the pipeline names the faces of a photo (`model.naming`); the draw is seeded.
    """
    prepared = read_prepared(prepared_dir, bundle.roster)
    faces = prepared.faces
    is_stranger = faces["source"] == STRANGER_SOURCE
    chosen = faces[
        (~is_stranger & (faces["split"] == split))
        | (is_stranger & ((faces["split"] == stranger_split) | (stranger_split == "all")))
    ]
    scores = score_faces(bundle.face_model, bundle.gallery, prepared, chosen)
    trials = stranger_trials(scores.photos, scores.truth, seed=TRIAL_SEED)
    share = strangers_named_among_members(
        trials, bundle.roster, scores.probabilities, scores.similarities, thresholds
    )
    return {
        "trials": len(trials),
        "members_per_trial": f"1-{MAX_TRIAL_MEMBERS}",
        "share_named": round(share, 4) if share is not None else None,
    }


def summarise_scores(scores: list[PhotoScore]) -> dict[str, Any]:
    """Sum photo scores into per-face accuracy, member-set figures and the exact-set rate."""
    if not scores:
        return {"photos": 0}
    labelled = sum(score.labelled_faces for score in scores)
    named_right = sum(score.faces_named_right for score in scores)
    true_total = sum(len(score.true_members) for score in scores)
    named_total = sum(len(score.named_members) for score in scores)
    both_total = sum(len(score.true_members & score.named_members) for score in scores)
    micro_precision = both_total / named_total if named_total else 1.0
    micro_recall = both_total / true_total if true_total else 1.0
    micro_sum = micro_precision + micro_recall
    return {
        "photos": len(scores),
        "labelled_faces": labelled,
        "faces_named_right": named_right,
        "per_face_accuracy": round(named_right / labelled, 4) if labelled else None,
        "member_set": {
            "precision": round(sum(s.precision for s in scores) / len(scores), 4),
            "recall": round(sum(s.recall for s in scores) / len(scores), 4),
            "f1": round(sum(s.f1 for s in scores) / len(scores), 4),
            "micro_precision": round(micro_precision, 4),
            "micro_recall": round(micro_recall, 4),
            "micro_f1": round(2 * micro_precision * micro_recall / micro_sum, 4)
            if micro_sum
            else 0.0,
        },
        "exact_set_rate": round(
            sum(score.named_members == score.true_members for score in scores) / len(scores), 4
        ),
    }


def format_report(report: dict[str, Any]) -> str:
    """Render the report as a short readable table."""
    group = report["group_photos"]
    strangers = report["strangers"]
    lines = [f"bundle {report['bundle']}  thresholds {report['thresholds'][:19]}..."]
    if group.get("photos"):
        member_set = group["member_set"]
        lines += [
            f"group photos ({report['split']}): {group['photos']} photos, "
            f"{group['labelled_faces']} labelled faces",
            f"  per-face accuracy      {group['per_face_accuracy']:.4f}",
            f"  member-set precision   {member_set['precision']:.4f}",
            f"  member-set recall      {member_set['recall']:.4f}",
            f"  member-set F1          {member_set['f1']:.4f}",
            f"  exact-set rate         {group['exact_set_rate']:.4f}",
            f"  seconds per photo      {report['seconds_per_group_photo']:.3f}",
        ]
    if strangers.get("faces"):
        lines += [
            f"strangers ({strangers['split']}): {strangers['photos']} photos, "
            f"{strangers['faces']} faces",
            f"  faces named as member  {strangers['faces_named']} "
            f"({strangers['share_faces_named']:.4f})",
        ]
    among = strangers.get("among_members") or {}
    if among.get("trials"):
        lines.append(
            f"  named among {among['members_per_trial']} members  {among['share_named']:.4f} "
            f"({among['trials']} chip trials)"
        )
    return "\n".join(lines)


def _identify(pipeline: Pipeline, path: Path) -> IdentifyResult | None:
    try:
        return pipeline.identify(path.read_bytes())
    except (OSError, MemberlensError):
        logger.warning("photo skipped", extra={"photo": str(path)}, exc_info=True)
        return None


def _stranger_figures(pipeline: Pipeline, photos: list[Path]) -> dict[str, Any]:
    faces = 0
    named = 0
    photos_named = 0
    named_as: dict[str, int] = {}
    for path in photos:
        result = _identify(pipeline, path)
        if result is None:
            continue
        faces += len(result["faces"])
        members = [face["member"] for face in result["faces"] if face["member"] is not None]
        named += len(members)
        photos_named += bool(members)
        for member in members:
            named_as[member] = named_as.get(member, 0) + 1
    return {
        "photos": len(photos),
        "faces": faces,
        "faces_named": named,
        "share_faces_named": round(named / faces, 4) if faces else None,
        "photos_with_a_member_named": photos_named,
        "named_as": named_as,
    }


def _group_photos(prepared_dir: Path, split: str) -> list[tuple[Path, list[LabelledFace]]]:
    path = prepared_dir / PHOTOS_FILE
    if not path.is_file():
        raise DatasetError(f"{path} not found; run `memberlens prepare --out {prepared_dir}`")
    photos = pd.read_csv(path, keep_default_na=False)
    chosen = photos[photos["split"] == split]
    if chosen.empty:
        raise DatasetError(f"{path} has no group photo in split {split!r}")
    return [
        (
            Path(row["photo"]),
            [
                LabelledFace(
                    box["member"], (box["x_min"], box["y_min"], box["x_max"], box["y_max"])
                )
                for box in json.loads(row["boxes"])
            ],
        )
        for _, row in chosen.iterrows()
    ]


def _stranger_photos(prepared_dir: Path, split: str) -> list[Path]:
    faces = pd.read_csv(prepared_dir / FACES_FILE, keep_default_na=False)
    strangers = faces[faces["source"] == STRANGER_SOURCE]
    if split != "all":
        strangers = strangers[strangers["split"] == split]
    return [Path(photo) for photo in dict.fromkeys(strangers["photo"])]
