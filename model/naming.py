"""Name the faces of a photo: first each face on its own cuts, then the rest among the named.

A face that passes its own cuts is named by the one-to-one assignment over the photo
(`model.assign`). When at least `ContextCuts.min_named` faces are named that way, the photo is
plainly a photo of the group, and a face left over is far more likely to be a member than a
face alone: such a face may take a member not yet named, under the looser context cuts. For
the BTS bundle of seeds 0 and 1 this named 258 instead of 245 of the 277 labelled faces of
the valid photos (small, blurred or turned faces that the strict cuts refuse; `memberlens
evaluate` with and without `thresholds context --off`). The price is a stranger among members:
`tune_context` weighs it on stranger faces placed among one to four members of a photo, and
`strangers_named_among_members` reports it.
"""

import dataclasses
import logging
from itertools import product

import numpy as np
from numpy.typing import NDArray

from model.assign import NOBODY, assign_members, name_faces
from model.thresholds import ContextCuts, Thresholds

logger = logging.getLogger(__name__)

MAX_TRIAL_MEMBERS = 4
_MIN_NAMED_GRID = (2, 3, 4)
_CONTEXT_FACE_GRID = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
_CONTEXT_GALLERY_QUANTILES = np.linspace(0.0, 0.3, 7)


def name_photo_faces(
    roster: list[str],
    probabilities: NDArray[np.float32],
    similarities: NDArray[np.float32],
    thresholds: Thresholds,
) -> NDArray[np.int64]:
    """Name the faces of one photo, each member at most once.

    Args:
        roster: member slugs, in label order.
        probabilities: (n_faces, n_members) face-model probabilities.
        similarities: (n_faces, n_members) similarity to each member's known faces.
        thresholds: the bundle's cuts, context cuts included.

    Returns:
        (n_faces,) member index per face, or `NOBODY`.
    """
    named = name_faces(probabilities, thresholds.is_known(roster, probabilities, similarities))
    if thresholds.context is None:
        return named
    return _name_in_context(probabilities, similarities, named, thresholds.context)


def name_faces_by_photo(
    photos: NDArray[np.object_],
    roster: list[str],
    probabilities: NDArray[np.float32],
    similarities: NDArray[np.float32],
    thresholds: Thresholds,
) -> NDArray[np.int64]:
    """Name faces from many photos as the pipeline does, photo by photo.

    Args:
        photos: (n_faces,) the photo each face comes from.

    Returns:
        (n_faces,) member index per face, or `NOBODY`.
    """
    named = np.full(len(photos), NOBODY, dtype=np.int64)
    for rows in _rows_by_photo(photos):
        named[rows] = name_photo_faces(roster, probabilities[rows], similarities[rows], thresholds)
    return named


def stranger_trials(
    photos: NDArray[np.object_], truth: NDArray[np.int64], *, seed: int
) -> list[NDArray[np.int64]]:
    """Place each stranger face among one to four member faces of one photo, drawn at random.

    Args:
        photos: (n_faces,) the photo each face comes from.
        truth: (n_faces,) member index per face, `NOBODY` for a stranger.
        seed: seeds the draw, so that tuning and reports repeat.

    Returns:
        One row-index array per stranger face: the member faces, then the stranger last.
    """
    rng = np.random.default_rng(seed)
    group_rows = [rows[truth[rows] != NOBODY] for rows in _rows_by_photo(photos)]
    group_rows = [rows for rows in group_rows if rows.size]
    trials: list[NDArray[np.int64]] = []
    if not group_rows:
        return trials
    for stranger_row in np.flatnonzero(truth == NOBODY):
        rows = group_rows[int(rng.integers(len(group_rows)))]
        count = int(rng.integers(1, min(MAX_TRIAL_MEMBERS, rows.size) + 1))
        members = rng.choice(rows, size=count, replace=False)
        trials.append(np.append(members, stranger_row).astype(np.int64))
    return trials


def strangers_named_among_members(
    trials: list[NDArray[np.int64]],
    roster: list[str],
    probabilities: NDArray[np.float32],
    similarities: NDArray[np.float32],
    thresholds: Thresholds,
) -> float | None:
    """Return the share of trials whose stranger was named a member (None without trials)."""
    if not trials:
        return None
    named = sum(
        int(
            name_photo_faces(roster, probabilities[rows], similarities[rows], thresholds)[-1]
            != NOBODY
        )
        for rows in trials
    )
    return named / len(trials)


def tune_context(
    roster: list[str],
    photos: NDArray[np.object_],
    probabilities: NDArray[np.float32],
    similarities: NDArray[np.float32],
    truth: NDArray[np.int64],
    strict: Thresholds,
    *,
    stranger_cost: float,
    seed: int,
) -> ContextCuts | None:
    """Choose the context cuts on validation faces, or None where they do not pay.

    Each candidate is scored on the member faces of the validation photos, as member faces
    named right minus member faces named wrong, and on `stranger_trials`, minus
    `stranger_cost` for each stranger named. The candidate must beat having no context cuts;
    ties go to the stricter cuts (more members named first, then higher cuts). Without
    stranger faces nothing would weigh against loose cuts, so there are then none.

    Args:
        photos: (n_faces,) the photo each face comes from.
        probabilities, similarities: (n_faces, n_members) the face scores.
        truth: (n_faces,) member index per face, `NOBODY` for a stranger.
        strict: the face and gallery cuts already tuned; their context cuts are ignored.
        seed: seeds the draw of `stranger_trials`.
    """
    member_photos = [rows for rows in _rows_by_photo(photos) if (truth[rows] != NOBODY).any()]
    trials = stranger_trials(photos, truth, seed=seed)
    if not member_photos or not trials:
        logger.warning(
            "context cuts left off: tuning needs member and stranger faces",
            extra={"photos": len(member_photos), "stranger_trials": len(trials)},
        )
        return None
    alone = dataclasses.replace(strict, context=None)
    units = [
        (rows, name_photo_faces(roster, probabilities[rows], similarities[rows], alone), is_trial)
        for rows, is_trial in [(rows, False) for rows in member_photos]
        + [(rows, True) for rows in trials]
    ]
    member_similarities = similarities[truth != NOBODY, truth[truth != NOBODY]]
    gallery_grid = np.quantile(member_similarities, _CONTEXT_GALLERY_QUANTILES).round(4)

    def score(context: ContextCuts | None) -> float:
        total = 0.0
        for rows, named, is_trial in units:
            if context is not None:
                named = _name_in_context(probabilities[rows], similarities[rows], named, context)
            total += _unit_score(named, truth[rows], is_trial=is_trial, stranger_cost=stranger_cost)
        return total

    best: ContextCuts | None = None
    best_score = score(None)
    for min_named, face_cut, gallery_cut in product(
        sorted(_MIN_NAMED_GRID, reverse=True),
        sorted(_CONTEXT_FACE_GRID, reverse=True),
        sorted(gallery_grid.tolist(), reverse=True),
    ):
        context = ContextCuts(min_named, face_cut, gallery_cut)
        candidate_score = score(context)
        if candidate_score > best_score:
            best, best_score = context, candidate_score
    logger.info(
        "context cuts tuned",
        extra={
            "context": best.to_json() if best else None,
            "photos": len(member_photos),
            "stranger_trials": len(trials),
        },
    )
    return best


def _unit_score(
    named: NDArray[np.int64], truth: NDArray[np.int64], *, is_trial: bool, stranger_cost: float
) -> float:
    """Score one photo (member faces right minus wrong) or one trial (its stranger's cost)."""
    if is_trial:
        return -stranger_cost if named[-1] != NOBODY else 0.0
    is_member = truth != NOBODY
    right = int((named[is_member] == truth[is_member]).sum())
    wrong = int(((named != NOBODY) & (named != truth) & is_member).sum())
    return float(right - wrong)


def _name_in_context(
    probabilities: NDArray[np.float32],
    similarities: NDArray[np.float32],
    named: NDArray[np.int64],
    context: ContextCuts,
) -> NDArray[np.int64]:
    is_named = named != NOBODY
    if is_named.sum() < context.min_named or is_named.all():
        return named
    is_free = np.ones(probabilities.shape[1], dtype=bool)
    is_free[named[is_named]] = False
    rows = np.flatnonzero(~is_named)
    eligible = (
        (probabilities[rows] >= context.face)
        & (similarities[rows] >= context.gallery)
        & is_free[None, :]
    )
    result = named.copy()
    result[rows] = assign_members(probabilities[rows], eligible)
    return result


def _rows_by_photo(photos: NDArray[np.object_]) -> list[NDArray[np.int64]]:
    return [np.flatnonzero(photos == photo) for photo in dict.fromkeys(photos.tolist())]
