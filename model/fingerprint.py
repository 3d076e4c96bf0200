"""Fingerprint files, so that a bundle records exactly which data it was trained on."""

import hashlib
from pathlib import Path

_CHUNK_BYTES = 1 << 20


def fingerprint_file(path: Path) -> str:
    """Return `sha256:<hex>` of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK_BYTES):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
