"""Cut crops of a photo that hold some labelled heads whole and cut none, and test boxes."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
_CROP_ATTEMPTS = 30
_MIN_ASPECT, _MAX_ASPECT = 0.4, 2.5


@dataclass(frozen=True)
class LabelledBox:
    """A labelled head box in pixels of its photo; `x_max`/`y_max` exclusive."""

    member: str
    box: Box


def choose_crop(
    boxes: Sequence[LabelledBox],
    size: tuple[int, int],
    n_members: int,
    rng: np.random.Generator,
) -> Box | None:
    """Choose a crop that holds about `n_members` labelled heads whole and cuts no labelled head.

    The heads nearest a random head are taken, their union is widened by random margins (more
    below, where bodies are), then the crop is shrunk away from any head it would cut; a head
    that cannot be shut out is taken in whole. The crop may so hold more heads than asked.

    Args:
        boxes: the photo's labelled head boxes.
        size: (width, height) of the photo in pixels.
        n_members: how many heads to aim for (at least 1).
        rng: the generator every random choice comes from.

    Returns:
        (x_min, y_min, x_max, y_max) in whole pixels, or None when no crop was found.
    """
    width, height = size
    heads = [clip_box(labelled.box, width, height) for labelled in boxes]
    heads = [head for head in heads if head[2] > head[0] and head[3] > head[1]]
    if not heads:
        return None
    for _ in range(_CROP_ATTEMPTS):
        crop = _try_crop(heads, (width, height), n_members, rng)
        if crop is not None:
            return crop
    return None


def heads_inside(boxes: Sequence[LabelledBox], crop: Box) -> list[LabelledBox]:
    """Return the labelled boxes wholly inside `crop`, moved into the crop's pixels."""
    x_min, y_min, _, _ = crop
    return [
        LabelledBox(
            labelled.member,
            (
                labelled.box[0] - x_min,
                labelled.box[1] - y_min,
                labelled.box[2] - x_min,
                labelled.box[3] - y_min,
            ),
        )
        for labelled in boxes
        if _contains(crop, labelled.box)
    ]


def cuts_a_head(boxes: Sequence[LabelledBox], crop: Box, size: tuple[int, int]) -> bool:
    """Tell whether `crop` overlaps a labelled head (clipped to the photo) without holding it."""
    width, height = size
    for labelled in boxes:
        head = clip_box(labelled.box, width, height)
        if _overlaps(crop, head) and not _contains(crop, head):
            return True
    return False


def clip_box(box: Box, width: int, height: int) -> Box:
    return (
        max(0.0, float(box[0])),
        max(0.0, float(box[1])),
        min(float(width), float(box[2])),
        min(float(height), float(box[3])),
    )


def _try_crop(
    heads: list[Box], size: tuple[int, int], n_members: int, rng: np.random.Generator
) -> Box | None:
    width, height = size
    anchor = heads[int(rng.integers(len(heads)))]
    centre = np.array([(anchor[0] + anchor[2]) / 2, (anchor[1] + anchor[3]) / 2])
    distances = [
        float(np.hypot((h[0] + h[2]) / 2 - centre[0], (h[1] + h[3]) / 2 - centre[1])) for h in heads
    ]
    chosen = [heads[i] for i in np.argsort(distances)[: max(1, n_members)]]
    side = float(np.median([max(h[2] - h[0], h[3] - h[1]) for h in chosen]))
    union = _union(chosen)
    crop = [
        max(0.0, union[0] - side * rng.uniform(0.1, 1.2)),
        max(0.0, union[1] - side * rng.uniform(0.1, 0.8)),
        min(float(width), union[2] + side * rng.uniform(0.1, 1.2)),
        min(float(height), union[3] + side * rng.uniform(0.5, 3.0)),
    ]
    for _ in range(len(heads) + 1):
        intruders = [
            h for h in heads if _overlaps(tuple(crop), h) and not _contains(tuple(crop), h)
        ]
        if not intruders:
            break
        for head in intruders:
            _shut_out_or_take_in(crop, head, union)
        union = _union([union, *[h for h in heads if _contains(tuple(crop), h)]])
    box = (
        float(np.floor(crop[0])),
        float(np.floor(crop[1])),
        float(np.ceil(crop[2])),
        float(np.ceil(crop[3])),
    )
    crop_width, crop_height = box[2] - box[0], box[3] - box[1]
    if crop_width < 8 or crop_height < 8:
        return None
    if not _MIN_ASPECT <= crop_width / crop_height <= _MAX_ASPECT:
        return None
    is_cutting = any(_overlaps(box, h) and not _contains(box, h) for h in heads)
    holds_a_head = any(_contains(box, h) for h in heads)
    return box if holds_a_head and not is_cutting else None


def _shut_out_or_take_in(crop: list[float], head: Box, union: Box) -> None:
    """Move one side of `crop` (in place) off `head`, or widen `crop` to hold `head` whole."""
    if head[2] <= union[0]:
        crop[0] = max(crop[0], head[2])
    elif head[0] >= union[2]:
        crop[2] = min(crop[2], head[0])
    elif head[3] <= union[1]:
        crop[1] = max(crop[1], head[3])
    elif head[1] >= union[3]:
        crop[3] = min(crop[3], head[1])
    else:
        crop[0], crop[1] = min(crop[0], head[0]), min(crop[1], head[1])
        crop[2], crop[3] = max(crop[2], head[2]), max(crop[3], head[3])


def _union(boxes: Sequence[Box]) -> Box:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _overlaps(first: Box | tuple[float, ...], second: Box) -> bool:
    return (
        first[0] < second[2]
        and second[0] < first[2]
        and first[1] < second[3]
        and second[1] < first[3]
    )


def _contains(outer: Box | tuple[float, ...], inner: Box) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )
