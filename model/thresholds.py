"""Own a bundle's thresholds: member cuts, context cuts, their file, digest and tuning."""

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from data_tools.atomic import write_json_atomic
from data_tools.errors import BundleLoadError, InvalidParameterError, UnknownMemberError

logger = logging.getLogger(__name__)

THRESHOLDS_FILE = "thresholds.json"
DEFAULT_FACE_THRESHOLD = 0.5
DEFAULT_GALLERY_THRESHOLD = 0.0
_GRID_SIZE = 41


@dataclass(frozen=True)
class ContextCuts:
    """Looser cuts for the faces of a photo in which `min_named` faces already passed their own.

    Once several members are named in a photo, a further face there is much more likely to be
    another member than a face on its own is. Such a face may take a member not yet named in the
    photo when that member's probability reaches `face` and its gallery similarity `gallery`
    (see `model.naming`).
    """

    min_named: int
    face: float
    gallery: float

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form kept under `context` in `thresholds.json`."""
        return {"min_named": self.min_named, "face": self.face, "gallery": self.gallery}


@dataclass(frozen=True)
class LiftCuts:
    """Cuts under which the scene model may name a face that its own cuts refused.

    In a bundle with a scene model, a face named nobody may take its most probable member not
    yet named in the photo when that member's face probability reaches `face` and the scene
    model's score for the member reaches `image_share` times the member's image cut (see
    `model.fusion.lift_faces`).
    """

    face: float
    image_share: float

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form kept under `lift` in `thresholds.json`."""
        return {"face": self.face, "image_share": self.image_share}


@dataclass(frozen=True)
class Thresholds:
    """Per-member cuts: `face` on face-model probabilities, `gallery` on similarity to known faces.

    `gallery` is the cosine similarity, in [-1, 1], between a face's descriptor and the member's
    own training faces; a face is named a member only when it passes both cuts. `image` holds the
    cuts of the whole-image model (empty when the bundle has none); `context`, the looser cuts
    for faces among named members (None: every face stands on its own cuts); `lift`, the cuts
    under which the scene model names a refused face (None: it never does).
    """

    face: dict[str, float]
    gallery: dict[str, float]
    image: dict[str, float] = field(default_factory=dict)
    tuned_on: dict[str, Any] = field(default_factory=dict)
    context: ContextCuts | None = None
    lift: LiftCuts | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form written to `thresholds.json`."""
        return {
            "face": self.face,
            "gallery": self.gallery,
            "image": self.image,
            "context": self.context.to_json() if self.context else None,
            "lift": self.lift.to_json() if self.lift else None,
            "tuned_on": self.tuned_on,
        }

    def digest(self) -> str:
        """Return `sha256:<hex>` of the cuts, so that an answer names the thresholds it used."""
        cuts: dict[str, Any] = {"face": self.face, "gallery": self.gallery, "image": self.image}
        if self.context is not None:
            # Left out when absent, so that thresholds without one keep their earlier digest.
            cuts["context"] = self.context.to_json()
        if self.lift is not None:
            cuts["lift"] = self.lift.to_json()
        canonical = json.dumps(cuts, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def is_known(
        self,
        roster: list[str],
        probabilities: NDArray[np.float32],
        similarities: NDArray[np.float32],
    ) -> NDArray[np.bool_]:
        """Return (n_faces,): which faces pass both cuts of their most probable member.

        A face that passes is someone known; which member it is, the one-to-one assignment
        over the whole photo decides (see `model.assign.name_faces`).
        """
        n_faces = probabilities.shape[0]
        if n_faces == 0:
            return np.zeros(0, dtype=bool)
        top = probabilities.argmax(axis=1)
        rows = np.arange(n_faces)
        face_cuts = np.array([self.face[member] for member in roster], dtype=np.float32)
        gallery_cuts = np.array([self.gallery[member] for member in roster], dtype=np.float32)
        known: NDArray[np.bool_] = (probabilities[rows, top] >= face_cuts[top]) & (
            similarities[rows, top] >= gallery_cuts[top]
        )
        return known

    def with_member(
        self, member: str, *, face: float | None = None, gallery: float | None = None
    ) -> "Thresholds":
        """Return a copy with one member's cuts changed.

        Raises:
            UnknownMemberError: `member` is not in these thresholds.
            InvalidParameterError: a cut is outside its range.
        """
        if member not in self.face:
            known = ", ".join(sorted(self.face))
            raise UnknownMemberError(f"no member {member!r} in this bundle; members: {known}")
        face_cuts = dict(self.face)
        gallery_cuts = dict(self.gallery)
        if face is not None:
            face_cuts[member] = _checked(face, 0.0, 1.0, "face threshold")
        if gallery is not None:
            gallery_cuts[member] = _checked(gallery, -1.0, 1.0, "gallery threshold")
        tuned_on = {
            **self.tuned_on,
            "edited_by_hand": sorted({*self.tuned_on.get("edited_by_hand", []), member}),
        }
        return dataclasses.replace(
            self, face=face_cuts, gallery=gallery_cuts, image=dict(self.image), tuned_on=tuned_on
        )

    def with_lift(self, lift: LiftCuts | None) -> "Thresholds":
        """Return a copy with other lift cuts (None switches them off).

        Raises:
            InvalidParameterError: a cut is outside [0, 1], or there are no image cuts to lift by.
        """
        if lift is not None:
            if not self.image:
                raise InvalidParameterError(
                    "these thresholds have no image cuts (the bundle has no scene model), so lift "
                    "cuts would change nothing; make a scene bundle with `memberlens scene-train`"
                )
            lift = LiftCuts(
                _checked(lift.face, 0.0, 1.0, "lift face threshold"),
                _checked(lift.image_share, 0.0, 1.0, "lift image share"),
            )
        tuned_on = {**self.tuned_on, "lift_edited_by_hand": True}
        return dataclasses.replace(self, image=dict(self.image), tuned_on=tuned_on, lift=lift)

    def with_context(self, context: ContextCuts | None) -> "Thresholds":
        """Return a copy with other context cuts (None switches them off).

        Raises:
            InvalidParameterError: a cut is outside its range or `min_named` is under 1.
        """
        if context is not None:
            if context.min_named < 1:
                raise InvalidParameterError(
                    f"min_named must be at least 1, got {context.min_named}"
                )
            context = ContextCuts(
                context.min_named,
                _checked(context.face, 0.0, 1.0, "context face threshold"),
                _checked(context.gallery, -1.0, 1.0, "context gallery threshold"),
            )
        tuned_on = {**self.tuned_on, "context_edited_by_hand": True}
        return dataclasses.replace(self, image=dict(self.image), tuned_on=tuned_on, context=context)


def default_thresholds(roster: list[str]) -> Thresholds:
    """Return untuned cuts for a roster: 0.5 on probability and no gallery gate."""
    return Thresholds(
        face={member: DEFAULT_FACE_THRESHOLD for member in roster},
        gallery={member: DEFAULT_GALLERY_THRESHOLD for member in roster},
    )


def save_thresholds(bundle_dir: Path, thresholds: Thresholds) -> None:
    """Write `thresholds.json` into a bundle atomically."""
    write_json_atomic(bundle_dir / THRESHOLDS_FILE, thresholds.to_json())


def load_thresholds(bundle_dir: Path, roster: list[str]) -> Thresholds:
    """Read and check a bundle's `thresholds.json` against its roster.

    Raises:
        BundleLoadError: the file is missing, not JSON, or lacks a member of the roster.
    """
    path = bundle_dir / THRESHOLDS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise BundleLoadError(f"{path} is missing; run `memberlens thresholds tune`") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleLoadError(f"{path} is not readable JSON ({err}); retune or restore it") from err
    if not isinstance(raw, dict):
        raise BundleLoadError(f"{path} must hold a JSON object, found {type(raw).__name__}")

    face = _member_cuts(raw.get("face"), roster, path, "face", 0.0, 1.0)
    gallery = _member_cuts(raw.get("gallery"), roster, path, "gallery", -1.0, 1.0)
    image_raw = raw.get("image") or {}
    image = _member_cuts(image_raw, roster, path, "image", 0.0, 1.0) if image_raw else {}
    tuned_raw = raw.get("tuned_on")
    tuned_on: dict[str, Any] = tuned_raw if isinstance(tuned_raw, dict) else {}
    return Thresholds(
        face,
        gallery,
        image,
        tuned_on,
        _context_cuts(raw.get("context"), path),
        _lift_cuts(raw.get("lift"), path),
    )


def tune_thresholds(
    roster: list[str],
    probabilities: NDArray[np.float32],
    similarities: NDArray[np.float32],
    is_member_face: NDArray[np.bool_],
    *,
    stranger_cost: float,
) -> Thresholds:
    """Choose each member's face and gallery cuts on validation faces, from one shared pair up.

    The cuts decide whether a face is someone known at all: a face is known when it passes the
    cuts of its most probable member. Which member it is comes afterwards from the one-to-one
    assignment over the photo, which often mends a face whose most probable member is wrong;
    so a member face counts as a gain whichever member it is, and a stranger as a loss. Faces
    are scored on their most probable member: member faces that pass, minus `stranger_cost`
    times strangers that pass.

    First one pair of cuts is tuned on all faces together (ties go to the stricter pair). Then
    each member's cuts may rise above that pair, on the faces whose most probable member it
    is, but only where that scores strictly better (ties go to the shared pair). A validation
    set holds a few dozen faces per member and strangers of a handful of people: cuts tuned
    member by member from nothing followed those few people, and on two seeds one member's
    face cut fell to 0.21 and unseen strangers were named at four times the rate, while
    members with no stranger near them got cuts just under their lowest valid face.

    Args:
        roster: member slugs, in label order.
        probabilities: (n_faces, n_members) face-model probabilities.
        similarities: (n_faces, n_members) similarity of each face to each member's known faces.
        is_member_face: (n_faces,) true for a face of any member, false for a stranger.
        stranger_cost: how many named member faces one stranger named as a member is worth.

    Returns:
        The tuned thresholds, with counts of what they were tuned on, and no context cuts.
    """
    n_faces = probabilities.shape[0]
    if similarities.shape != probabilities.shape or is_member_face.shape != (n_faces,):
        raise InvalidParameterError("probabilities, similarities and labels do not match")
    top_member = probabilities.argmax(axis=1) if n_faces else np.zeros(0, dtype=np.int64)
    top_probabilities = probabilities[np.arange(n_faces), top_member]
    top_similarities = similarities[np.arange(n_faces), top_member]
    shared = _tune_pair(
        top_probabilities,
        top_similarities,
        is_member=is_member_face,
        stranger_cost=stranger_cost,
        floor=None,
    )
    face_cuts: dict[str, float] = {}
    gallery_cuts: dict[str, float] = {}
    for index, member in enumerate(roster):
        rows = top_member == index
        face_cuts[member], gallery_cuts[member] = _tune_pair(
            top_probabilities[rows],
            top_similarities[rows],
            is_member=is_member_face[rows],
            stranger_cost=stranger_cost,
            floor=shared,
        )
    tuned_on = {
        "faces": int(n_faces),
        "stranger_faces": int((~is_member_face).sum()),
        "stranger_cost": stranger_cost,
        "shared": {"face": shared[0], "gallery": shared[1]},
    }
    logger.info("thresholds tuned", extra={**tuned_on, "face": face_cuts, "gallery": gallery_cuts})
    return Thresholds(face_cuts, gallery_cuts, {}, tuned_on)


def _tune_pair(
    probabilities: NDArray[np.float32],
    similarities: NDArray[np.float32],
    *,
    is_member: NDArray[np.bool_],
    stranger_cost: float,
    floor: tuple[float, float] | None,
) -> tuple[float, float]:
    """Return the (face, gallery) pair that scores best; with no floor the strictest of ties.

    With a floor only pairs at or above it are tried, and ties go to the loosest pair: the
    floor itself unless something above it scores strictly better.
    """
    if probabilities.size == 0:
        return floor or (DEFAULT_FACE_THRESHOLD, DEFAULT_GALLERY_THRESHOLD)
    face_grid = np.unique(np.concatenate([np.linspace(0.05, 0.99, _GRID_SIZE), [0.5]]))
    gallery_grid = np.unique(
        np.concatenate([[-1.0], np.quantile(similarities, np.linspace(0.0, 1.0, _GRID_SIZE))])
    )
    if floor is not None:
        face_floor, gallery_floor = floor
        face_grid = np.unique(np.append(face_grid[face_grid >= face_floor], face_floor))
        gallery_grid = np.unique(
            np.append(gallery_grid[gallery_grid >= gallery_floor], gallery_floor)
        )
    # (n_face_cuts, n_gallery_cuts, n_faces): which faces each pair of cuts would name.
    named = (probabilities[None, None, :] >= face_grid[:, None, None]) & (
        similarities[None, None, :] >= gallery_grid[None, :, None]
    )
    gain = np.where(is_member, 1.0, -stranger_cost)
    scores = (named * gain[None, None, :]).sum(axis=2)

    best_pairs = list(zip(*np.nonzero(scores == scores.max()), strict=True))
    # Without a floor the strictest best pair; with one the loosest, so a member's cuts leave
    # the shared pair only for a real gain.
    face_index, gallery_index = max(best_pairs) if floor is None else min(best_pairs)
    return float(face_grid[face_index]), float(gallery_grid[gallery_index])


def _member_cuts(
    raw: object, roster: list[str], path: Path, kind: str, low: float, high: float
) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise BundleLoadError(f"{path}: `{kind}` must map each member to a number")
    missing = [member for member in roster if member not in raw]
    if missing:
        raise BundleLoadError(f"{path}: `{kind}` has no cut for {', '.join(missing)}")
    return {
        member: _cut_value(raw[member], low, high, path, f"`{kind}` cut of {member}")
        for member in roster
    }


def _context_cuts(raw: object, path: Path) -> ContextCuts | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BundleLoadError(f"{path}: `context` must be null or an object, found {raw!r}")
    min_named = raw.get("min_named")
    if isinstance(min_named, bool) or not isinstance(min_named, int) or min_named < 1:
        raise BundleLoadError(
            f"{path}: `context.min_named` must be a whole number of at least 1, found {min_named!r}"
        )
    return ContextCuts(
        min_named,
        _cut_value(raw.get("face"), 0.0, 1.0, path, "`context.face`"),
        _cut_value(raw.get("gallery"), -1.0, 1.0, path, "`context.gallery`"),
    )


def _lift_cuts(raw: object, path: Path) -> LiftCuts | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BundleLoadError(f"{path}: `lift` must be null or an object, found {raw!r}")
    return LiftCuts(
        _cut_value(raw.get("face"), 0.0, 1.0, path, "`lift.face`"),
        _cut_value(raw.get("image_share"), 0.0, 1.0, path, "`lift.image_share`"),
    )


def _cut_value(value: object, low: float, high: float, path: Path, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BundleLoadError(
            f"{path}: {what} must be a number in [{low}, {high}], found {value!r}"
        )
    return float(value)


def _checked(value: float, low: float, high: float, what: str) -> float:
    if not low <= value <= high:
        raise InvalidParameterError(f"{what} must be in [{low}, {high}], got {value}")
    return float(value)
