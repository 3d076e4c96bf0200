"""Check the photos of a collection: quarantine what is unusable and keep one of each duplicate.

Every file is decoded in full. Corrupt, truncated, too small, too large, non-image and
animated files move to `quarantine/<reason>/`, and so do all but one photo of each group of
exact or near duplicates. A JSON report records every decision.
"""

import io
import json
import logging
import shutil
import struct
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

from PIL import Image, ImageFile, UnidentifiedImageError

from data_tools.atomic import write_text_atomic
from data_tools.collect_journal import PHOTOS_DIR
from data_tools.duplicates import DEFAULT_MAX_HAMMING_DISTANCE, group_duplicates
from data_tools.errors import DatasetError
from data_tools.fetch import EXTENSION_BY_FORMAT

logger = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"
REPORT_FILE = "check_report.json"
KEPT = "kept"


@dataclass(frozen=True)
class CheckOptions:
    """What a usable photo is, and how alike two photos must be to count as one shot."""

    min_side_px: int = 128
    max_pixels: int = 50_000_000
    near_duplicate_distance: int = DEFAULT_MAX_HAMMING_DISTANCE


class FileVerdict(TypedDict):
    """The decision on one file, as the report records it."""

    path: str
    status: str
    reason: str
    detail: str
    moved_to: str


@dataclass
class CheckReport:
    """The decisions on every file of one check run."""

    checked_at: str
    verdicts: list[FileVerdict] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        """Return how many files were kept and how many went to quarantine for each reason."""
        return Counter(verdict["reason"] or KEPT for verdict in self.verdicts)

    def render(self) -> str:
        """Return a readable summary: how many files were kept, and quarantined per reason."""
        counts = self.counts()
        lines = [f"checked {len(self.verdicts)} files: kept {counts.get(KEPT, 0)}"]
        for reason, count in sorted(counts.items()):
            if reason != KEPT:
                lines.append(f"  quarantined as {reason}: {count}")
        return "\n".join(lines)


def check_collection(collection: Path, options: CheckOptions) -> CheckReport:
    """Check every file under `collection/photos`, quarantine the unusable, write the report.

    Running it again checks only what is still in `photos/`, so it is safe to repeat.

    Raises:
        DatasetError: the folder has no `photos/` or cannot be written.
    """
    photos_dir = collection / PHOTOS_DIR
    if not photos_dir.is_dir():
        raise DatasetError(
            f"{photos_dir} not found; pass a collection folder made by `memberlens collect` "
            "(one sub-folder of photos per member under photos/)"
        )
    report = CheckReport(checked_at=datetime.now(UTC).isoformat(timespec="seconds"))
    usable: dict[str, _DecodedPhoto] = {}
    for path in sorted(item for item in photos_dir.rglob("*") if item.is_file()):
        relative = path.relative_to(collection).as_posix()
        reason, detail, decoded = _inspect(path, options)
        if decoded is not None:
            usable[relative] = decoded
        else:
            report.verdicts.append(_quarantine(collection, relative, reason, detail))

    for kept, copies in _duplicate_groups(collection, usable, options):
        for copy in copies:
            report.verdicts.append(_quarantine(collection, copy, "duplicate", f"kept {kept}"))
            del usable[copy]
    report.verdicts.extend(
        {"path": path, "status": KEPT, "reason": "", "detail": "", "moved_to": ""}
        for path in usable
    )
    report.verdicts.sort(key=lambda verdict: verdict["path"])
    _write_report(collection / REPORT_FILE, report)
    logger.info("collection checked", extra={"files": len(report.verdicts), "kept": len(usable)})
    return report


@dataclass(frozen=True)
class _DecodedPhoto:
    pixels: int
    size_bytes: int


def _inspect(path: Path, options: CheckOptions) -> tuple[str, str, _DecodedPhoto | None]:
    """Decode one file in full; return (reason, detail, None) for an unusable one."""
    try:
        photo_bytes = path.read_bytes()
    except OSError as err:
        return "unreadable", str(err), None
    if not photo_bytes:
        return "not-an-image", "empty file", None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(photo_bytes))
    except Image.DecompressionBombError:
        return "too-many-pixels", "past Pillow's decompression bomb limit", None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as err:
        return "not-an-image", str(err), None
    with image:
        verdict = _inspect_open_image(image, options)
    if verdict is not None:
        return verdict[0], verdict[1], None
    width, height = image.size
    return "", "", _DecodedPhoto(width * height, len(photo_bytes))


def _inspect_open_image(image: Image.Image, options: CheckOptions) -> tuple[str, str] | None:
    image_format = image.format or ""
    width, height = image.size
    if image_format not in EXTENSION_BY_FORMAT:
        return "unsupported-format", image_format or "unknown"
    if width * height > options.max_pixels:
        return "too-many-pixels", f"{width}x{height} is over {options.max_pixels} pixels"
    if getattr(image, "is_animated", False) or getattr(image, "n_frames", 1) > 1:
        return "animated", f"{getattr(image, 'n_frames', 0)} frames"
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        logger.warning("pillow accepts truncated images; truncated photos are not caught")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError) as err:
        reason = "truncated" if "truncat" in str(err).lower() else "corrupt"
        return reason, str(err)
    if min(width, height) < options.min_side_px:
        return "too-small", f"{width}x{height}, shorter side under {options.min_side_px} px"
    return None


def _duplicate_groups(
    collection: Path, usable: dict[str, _DecodedPhoto], options: CheckOptions
) -> list[tuple[str, list[str]]]:
    """Return (kept, copies) for every group of exact or near duplicates.

    The kept photo is the one with the most pixels, then the most bytes, then the first path.
    """
    relative_by_path = {collection / relative: relative for relative in usable}
    group_keys = group_duplicates(
        list(relative_by_path), max_hamming_distance=options.near_duplicate_distance
    )
    groups: dict[str, list[str]] = {}
    for path, key in group_keys.items():
        groups.setdefault(key, []).append(relative_by_path[path])
    result: list[tuple[str, list[str]]] = []
    for group in groups.values():
        if len(group) < 2:
            continue
        ranked = sorted(
            group, key=lambda path: (-usable[path].pixels, -usable[path].size_bytes, path)
        )
        result.append((ranked[0], ranked[1:]))
    return result


def _quarantine(collection: Path, relative: str, reason: str, detail: str) -> FileVerdict:
    source = collection / relative
    target = collection / QUARANTINE_DIR / reason / Path(relative).relative_to(PHOTOS_DIR)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = 1
    while target.exists():
        target = target.with_name(f"{target.stem}-{suffix}{target.suffix}")
        suffix += 1
    shutil.move(source, target)
    logger.debug("photo quarantined", extra={"path": relative, "reason": reason})
    return {
        "path": relative,
        "status": "quarantined",
        "reason": reason,
        "detail": detail,
        "moved_to": target.relative_to(collection).as_posix(),
    }


def _write_report(path: Path, report: CheckReport) -> None:
    document = {
        "checked_at": report.checked_at,
        "counts": dict(report.counts()),
        "files": report.verdicts,
    }
    write_text_atomic(path, json.dumps(document, indent=2, ensure_ascii=False))
