"""Match detected faces to hand-labelled boxes one to one.

Labelled boxes are whole heads, hair included; detections are tighter faces. A plain IoU is
then often low for a right pair (under 0.3 for about one pair in ten on the shared BTS photos),
so the score adds containment: the share of the detection that lies inside the labelled box.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]

# On the shared BTS photos the best pair of each labelled box scores either 0 (no detection
# near it) or over 1.1, so any minimum in between gives the same matches; 0.8 leaves room for
# looser labels elsewhere.
DEFAULT_MIN_MATCH_SCORE = 0.8
# A detection this much smaller than the labelled head is a different face inside it (a poster,
# a face in the background); the smallest right pair on the shared photos has a ratio of 0.14.
DEFAULT_MIN_AREA_RATIO = 0.05


@dataclass(frozen=True)
class BoxMatch:
    """One labelled box paired with one detection.

    Attributes:
        labelled_index: index into the labelled boxes.
        detection_index: index into the detections.
        score: IoU + containment, in [0, 2].
        iou: intersection over union of the two boxes.
        containment: share of the detection's area inside the labelled box.
    """

    labelled_index: int
    detection_index: int
    score: float
    iou: float
    containment: float


@dataclass(frozen=True)
class MatchResult:
    """The one-to-one matching of a photo's labelled boxes and detections."""

    matches: list[BoxMatch]
    missed_labelled: list[int]
    unmatched_detections: list[int]


def match_faces(
    labelled_boxes: Sequence[Box],
    detection_boxes: Sequence[Box],
    *,
    min_match_score: float = DEFAULT_MIN_MATCH_SCORE,
    min_area_ratio: float = DEFAULT_MIN_AREA_RATIO,
) -> MatchResult:
    """Pair labelled boxes with detections so that the total match score is highest.

    Args:
        labelled_boxes: (x_min, y_min, x_max, y_max) hand-labelled boxes, photo pixels.
        detection_boxes: (x_min, y_min, x_max, y_max) detected face boxes, same pixels.
        min_match_score: the least IoU + containment (in [0, 2]) that counts as a match.
        min_area_ratio: the least detection area / labelled area that counts as a match.

    Returns:
        The matches sorted by labelled index, and the indices left over on each side.
    """
    scores, ious, containments = score_pairs(labelled_boxes, detection_boxes)
    area_ratios = _area_ratios(labelled_boxes, detection_boxes)
    is_allowed = (scores >= min_match_score) & (area_ratios >= min_area_ratio)

    # Hungarian assignment on allowed pairs only; a forbidden pair costs nothing and is
    # dropped afterwards, so it can never push out an allowed one.
    gains = np.where(is_allowed, scores, 0.0)
    rows, columns = linear_sum_assignment(gains, maximize=True)

    matches = [
        BoxMatch(
            labelled_index=int(row),
            detection_index=int(column),
            score=float(scores[row, column]),
            iou=float(ious[row, column]),
            containment=float(containments[row, column]),
        )
        for row, column in zip(rows, columns, strict=True)
        if is_allowed[row, column]
    ]
    matched_labelled = {match.labelled_index for match in matches}
    matched_detections = {match.detection_index for match in matches}
    return MatchResult(
        matches=matches,
        missed_labelled=[i for i in range(len(labelled_boxes)) if i not in matched_labelled],
        unmatched_detections=[
            i for i in range(len(detection_boxes)) if i not in matched_detections
        ],
    )


def score_pairs(
    labelled_boxes: Sequence[Box], detection_boxes: Sequence[Box]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Score every labelled box against every detection.

    Returns:
        (scores, ious, containments), each (n_labelled, n_detections) float64; a score is
        the IoU plus the containment (share of the detection inside the labelled box).
    """
    labelled = _as_array(labelled_boxes)  # (n_labelled, 4)
    detections = _as_array(detection_boxes)  # (n_detections, 4)
    x_overlap = np.minimum(labelled[:, None, 2], detections[None, :, 2]) - np.maximum(
        labelled[:, None, 0], detections[None, :, 0]
    )
    y_overlap = np.minimum(labelled[:, None, 3], detections[None, :, 3]) - np.maximum(
        labelled[:, None, 1], detections[None, :, 1]
    )
    intersections = np.clip(x_overlap, 0.0, None) * np.clip(y_overlap, 0.0, None)
    labelled_areas = _areas(labelled)[:, None]
    detection_areas = _areas(detections)[None, :]
    unions = labelled_areas + detection_areas - intersections
    ious = np.divide(intersections, unions, out=np.zeros_like(intersections), where=unions > 0)
    containments = np.divide(
        intersections,
        np.broadcast_to(detection_areas, intersections.shape),
        out=np.zeros_like(intersections),
        where=np.broadcast_to(detection_areas, intersections.shape) > 0,
    )
    return ious + containments, ious, containments


def _area_ratios(
    labelled_boxes: Sequence[Box], detection_boxes: Sequence[Box]
) -> NDArray[np.float64]:
    labelled_areas = _areas(_as_array(labelled_boxes))[:, None]
    detection_areas = _areas(_as_array(detection_boxes))[None, :]
    safe_labelled = np.where(labelled_areas > 0, labelled_areas, 1.0)
    ratios: NDArray[np.float64] = np.where(labelled_areas > 0, detection_areas / safe_labelled, 0.0)
    return ratios


def _as_array(boxes: Sequence[Box]) -> NDArray[np.float64]:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _areas(boxes: NDArray[np.float64]) -> NDArray[np.float64]:
    widths = np.clip(boxes[:, 2] - boxes[:, 0], 0.0, None)
    heights = np.clip(boxes[:, 3] - boxes[:, 1], 0.0, None)
    areas: NDArray[np.float64] = widths * heights
    return areas
