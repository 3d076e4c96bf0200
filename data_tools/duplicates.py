"""Group copies of one shot (byte-identical or re-encoded/resized) and split groups, not photos.

A random split by photo would put two copies of one shot on both sides and flatter the
validation scores; splitting by duplicate group cannot.
"""

import hashlib
import logging
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import imagehash
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from data_tools.errors import InvalidParameterError, MemberlensError
from data_tools.photos import load_photo
from data_tools.voc import normalise_name

logger = logging.getLogger(__name__)

Split = Literal["train", "valid"]

# Tuned on the shared BTS photos with a 64-bit DCT hash: copies of one shot (re-encoded,
# resized, watermarked) lie at 0 to 6 bits, a cropped and recoloured copy at 10, distinct shots
# of one event at 10 to 16. At 10 the cropped copy joins its original at the cost of one pair of
# same-event shots grouped too, which only makes the split more cautious.
DEFAULT_MAX_HAMMING_DISTANCE = 10
GROUP_KEY_HEX_CHARS = 16
_HASH_MAX_BYTES = 200 * 1024 * 1024
_HASH_MAX_PIXELS = 150_000_000


def group_duplicates(
    paths: Sequence[Path], *, max_hamming_distance: int = DEFAULT_MAX_HAMMING_DISTANCE
) -> dict[Path, str]:
    """Give each photo the key of its duplicate group.

    Exact copies (same sha256) always share a group; photos whose perceptual hashes differ by
    at most `max_hamming_distance` of 64 bits are joined too, transitively. A photo that cannot
    be decoded is grouped by its bytes only.

    Args:
        paths: photo files.
        max_hamming_distance: largest perceptual-hash distance, in bits, that joins two photos.

    Returns:
        For every path, its group key: the first 16 hex digits of the smallest sha256 in the
        group, so the key depends on the photos' contents, not on their order or location.
    """
    digests = [_sha256_of(path) for path in paths]
    perceptual_hashes = [_perceptual_hash(path) for path in paths]

    groups = _DisjointSets(len(paths))
    first_with_digest: dict[str, int] = {}
    for index, digest in enumerate(digests):
        groups.join(first_with_digest.setdefault(digest, index), index)
    for first, second in _near_pairs(perceptual_hashes, max_hamming_distance):
        groups.join(first, second)

    smallest_digest: dict[int, str] = {}
    for index, digest in enumerate(digests):
        root = groups.find(index)
        smallest_digest[root] = min(smallest_digest.get(root, digest), digest)
    keys = {
        path: smallest_digest[groups.find(index)][:GROUP_KEY_HEX_CHARS]
        for index, path in enumerate(paths)
    }
    _log_groups(keys)
    return keys


def split_groups(
    group_keys: Iterable[str], valid_share: float = 0.2, seed: int = 0
) -> dict[str, Split]:
    """Assign whole groups to train or valid, at random but the same for the same seed.

    Args:
        group_keys: group keys, repeats allowed (one per photo is fine).
        valid_share: share of groups sent to valid, in [0, 1).
        seed: the random seed; the result depends only on it and on the set of keys.

    Returns:
        Every distinct key mapped to "train" or "valid". With two groups or more and a
        positive share, both sides get at least one group.

    Raises:
        InvalidParameterError: `valid_share` outside [0, 1).
    """
    if not 0.0 <= valid_share < 1.0:
        raise InvalidParameterError(
            f"Expected valid_share in [0, 1), but got {valid_share}; use about 0.2."
        )
    ordered_keys = sorted(set(group_keys))
    random.Random(seed).shuffle(ordered_keys)
    valid_count = round(len(ordered_keys) * valid_share)
    if valid_share > 0.0 and len(ordered_keys) >= 2:
        valid_count = min(max(valid_count, 1), len(ordered_keys) - 1)
    valid_keys = set(ordered_keys[:valid_count])
    return {key: ("valid" if key in valid_keys else "train") for key in sorted(ordered_keys)}


class _DisjointSets:
    """Union-find over 0..n-1 with path halving and union by size."""

    def __init__(self, size: int) -> None:
        self._parents = list(range(size))
        self._sizes = [1] * size

    def find(self, item: int) -> int:
        while self._parents[item] != item:
            self._parents[item] = self._parents[self._parents[item]]
            item = self._parents[item]
        return item

    def join(self, first: int, second: int) -> None:
        first_root, second_root = self.find(first), self.find(second)
        if first_root == second_root:
            return
        if self._sizes[first_root] < self._sizes[second_root]:
            first_root, second_root = second_root, first_root
        self._parents[second_root] = first_root
        self._sizes[first_root] += self._sizes[second_root]


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        logger.warning("photo unreadable, grouped by name", extra={"photo": path.name})
        return hashlib.sha256(normalise_name(path.name).encode("utf-8")).hexdigest()
    return digest.hexdigest()


def _perceptual_hash(path: Path) -> int | None:
    try:
        photo = load_photo(path, max_bytes=_HASH_MAX_BYTES, max_pixels=_HASH_MAX_PIXELS)
    except MemberlensError:
        logger.warning("photo undecodable, grouped by bytes only", extra={"photo": path.name})
        return None
    # The DCT hash of the upright photo: robust to re-encoding, resizing and small edits.
    bits = imagehash.phash(Image.fromarray(photo)).hash.flatten()
    return int("".join("1" if bit else "0" for bit in bits), 2)


def _near_pairs(
    perceptual_hashes: Sequence[int | None], max_hamming_distance: int
) -> list[tuple[int, int]]:
    indices = [index for index, value in enumerate(perceptual_hashes) if value is not None]
    values: NDArray[np.uint64] = np.array(
        [perceptual_hashes[index] for index in indices], dtype=np.uint64
    )
    pairs: list[tuple[int, int]] = []
    for position in range(len(values) - 1):
        distances = np.bitwise_count(values[position + 1 :] ^ values[position])
        for offset in np.flatnonzero(distances <= max_hamming_distance):
            pairs.append((indices[position], indices[position + 1 + int(offset)]))
    return pairs


def _log_groups(keys: dict[Path, str]) -> None:
    sizes: dict[str, int] = {}
    for key in keys.values():
        sizes[key] = sizes.get(key, 0) + 1
    shared = sorted((size for size in sizes.values() if size > 1), reverse=True)
    logger.info(
        "duplicate groups found",
        extra={"photos": len(keys), "groups": len(sizes), "groups_with_copies": shared},
    )
