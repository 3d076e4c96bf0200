"""Keep the records of a collection folder: saved photos, URLs that gave nothing, and repairs.

`provenance.jsonl` has one `ProvenanceRecord` per saved photo and `attempts.jsonl` one
`AttemptRecord` per URL that gave no new photo. Each line is flushed and synced before the
next step, and a photo's record is written before the photo is moved from `.partial/` to its
final name, so that opening the journal after a kill can finish that move.
"""

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, NotRequired, TextIO, TypedDict

from data_tools.errors import DatasetError

logger = logging.getLogger(__name__)

PHOTOS_DIR = "photos"
PARTIAL_DIR = ".partial"
PROVENANCE_FILE = "provenance.jsonl"
ATTEMPTS_FILE = "attempts.jsonl"


class ProvenanceRecord(TypedDict):
    """Where a saved photo came from, when, and what its bytes are."""

    member: str
    path: str  # relative to the collection folder
    query: str
    image_url: str
    final_url: str  # after redirects
    page_url: str
    title: str
    fetched_at: str  # ISO 8601, UTC
    sha256: str
    size_bytes: int
    format: str
    width: int
    height: int


class AttemptRecord(TypedDict):
    """A URL that gave no new photo: it failed, or its bytes were already saved."""

    member: str
    image_url: str
    outcome: str  # "failed" or "duplicate"
    reason: str
    is_transient: bool
    at: str  # ISO 8601, UTC
    detail: NotRequired[str]
    duplicate_of: NotRequired[str]


class CollectJournal:
    """The records of one collection folder.

    Only the thread that runs `collect` touches it, so it needs no lock. Use it as a context
    manager to append; `CollectJournal.open` reads and repairs it first.
    """

    def __init__(self, out_dir: Path) -> None:
        """Bind to a folder; use `CollectJournal.open` to read and repair it."""
        self.out_dir = out_dir
        self.photos_dir = out_dir / PHOTOS_DIR
        self.partial_dir = out_dir / PARTIAL_DIR
        self.saved: list[ProvenanceRecord] = []
        self.attempts: list[AttemptRecord] = []
        self.present_paths: set[str] = set()
        self._streams: dict[str, TextIO] = {}

    @classmethod
    def open(cls, out_dir: Path) -> "CollectJournal":
        """Read the journal of `out_dir`, finish interrupted moves and drop leftover parts.

        Raises:
            DatasetError: the folder cannot be created or its journal cannot be read.
        """
        journal = cls(out_dir)
        try:
            journal.photos_dir.mkdir(parents=True, exist_ok=True)
            journal.partial_dir.mkdir(parents=True, exist_ok=True)
            journal.saved = _read_jsonl(out_dir / PROVENANCE_FILE)  # type: ignore[assignment]
            journal.attempts = _read_jsonl(out_dir / ATTEMPTS_FILE)  # type: ignore[assignment]
            journal._repair()
        except OSError as err:
            raise DatasetError(f"cannot use {out_dir} as a collection folder: {err}") from err
        return journal

    def __enter__(self) -> "CollectJournal":
        """Open the journal files for appending."""
        for name in (PROVENANCE_FILE, ATTEMPTS_FILE):
            self._streams[name] = (self.out_dir / name).open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the journal files and remove the partial folder if it is empty."""
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()
        with contextlib.suppress(OSError):
            self.partial_dir.rmdir()

    def saved_count(self, slug: str) -> int:
        """Return how many photos of a member are saved and still in the folder."""
        return sum(
            1
            for record in self.saved
            if record["member"] == slug and record["path"] in self.present_paths
        )

    def known_urls(self, *, retry_transient: bool) -> set[str]:
        """Return the URLs that must not be fetched again."""
        urls = {record["image_url"] for record in self.saved}
        urls.update(
            record["image_url"]
            for record in self.attempts
            if not (retry_transient and record.get("is_transient"))
        )
        return urls

    def saved_by_sha256(self) -> dict[str, str]:
        """Return the saved photos' paths by their sha256."""
        return {record["sha256"]: record["path"] for record in self.saved}

    def part_path(self, url: str) -> Path:
        """Return where the bytes of `url` wait while they are fetched and checked."""
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]
        return self.partial_dir / f"{key}.part"

    def record_saved(self, record: ProvenanceRecord, part_path: Path) -> None:
        """Record a photo, then move it to its final name (in that order: see the module)."""
        self._append(PROVENANCE_FILE, record)
        self.saved.append(record)
        self.present_paths.add(record["path"])
        final_path = self.out_dir / record["path"]
        final_path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part_path, final_path)

    def record_attempt(self, record: AttemptRecord) -> None:
        """Record a URL that gave no new photo."""
        self._append(ATTEMPTS_FILE, record)
        self.attempts.append(record)

    def _append(self, name: str, record: ProvenanceRecord | AttemptRecord) -> None:
        stream = self._streams[name]
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        stream.flush()
        os.fsync(stream.fileno())

    def _repair(self) -> None:
        for record in self.saved:
            final_path = self.out_dir / record["path"]
            part_path = self.part_path(record["image_url"])
            if not final_path.exists() and _sha256_of(part_path) == record["sha256"]:
                final_path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part_path, final_path)
                logger.info("interrupted move finished", extra={"path": record["path"]})
            if final_path.exists():
                self.present_paths.add(record["path"])
            else:
                # Moved away after collect (quarantined by `check`, or deleted): the record
                # stays, so its URL is not fetched again, but the photo no longer counts.
                logger.debug("recorded photo gone", extra={"path": record["path"]})
        for leftover in self.partial_dir.glob("*"):
            leftover.unlink()
            logger.info("partial download removed", extra={"path": leftover.name})


def read_provenance(out_dir: Path) -> list[ProvenanceRecord]:
    """Return the provenance records of a collection folder, one per saved photo."""
    return _read_jsonl(out_dir / PROVENANCE_FILE)  # type: ignore[return-value]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read JSON lines; a last line cut short by a kill is dropped and cut from the file.

    A malformed line elsewhere is skipped with a warning but kept in the file: only the last
    line can be the trace of an interrupted write.
    """
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.splitlines(keepends=True)
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        record = _parse_line(line)
        if record is not None and line.endswith(b"\n"):
            records.append(record)
        elif number == len(lines):
            logger.warning("journal tail dropped", extra={"path": str(path)})
            with path.open("r+b") as stream:
                stream.truncate(len(raw) - len(line))
        else:
            logger.warning("journal line skipped", extra={"path": str(path), "line": number})
    return records


def _parse_line(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _sha256_of(path: Path) -> str:
    if not path.exists():
        return ""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
