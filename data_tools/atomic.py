"""Write files so that a reader sees the old content or the new one, never half of either."""

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

NEW_FILE_MODE = 0o644


def write_bytes_atomic(path: Path, content: bytes) -> None:
    """Write `content` to a temporary file beside `path`, flush it to disk, then rename it."""
    write_with_atomic(path, lambda temp_path: temp_path.write_bytes(content))


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, value: Any) -> None:
    """Write `value` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_with_atomic(
    path: Path, write: Callable[[Path], object], *, is_durable: bool = True
) -> None:
    """Let `write` fill a temporary path beside `path`, then rename it over `path`.

    The temporary file is removed if `write` fails, so no half-written file is left behind.
    With `is_durable` the file is flushed to disk before the rename; many small files that can
    be made again (face chips) skip that for speed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".partial", dir=path.parent
    )
    os.close(handle)
    temp_path = Path(temp_name)
    try:
        write(temp_path)
        # mkstemp makes the file readable by its owner only; give it the mode of the file it
        # replaces, or the usual one of a new file, so that a service running as another user
        # can read a bundle.
        temp_path.chmod(_mode_of(path))
        if is_durable:
            with temp_path.open("rb") as written:
                os.fsync(written.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def _mode_of(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return NEW_FILE_MODE
