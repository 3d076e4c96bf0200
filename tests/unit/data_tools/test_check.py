"""Tests of `check`: every way a collected file can be unusable, duplicates, and the report."""

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_tools.check import QUARANTINE_DIR, REPORT_FILE, CheckOptions, check_collection
from data_tools.errors import DatasetError


def _pattern(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A blocky random picture: distinct seeds give perceptually distinct photos."""
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize(size, Image.Resampling.BILINEAR)


def _encode(image: Image.Image, image_format: str = "JPEG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def flat_png(width: int, height: int) -> bytes:
    """A valid 1-bit grey PNG of one colour, built row by row so that it costs milliseconds."""
    row = b"\x00" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _animated_gif() -> bytes:
    frames = [_pattern(seed, (200, 200)).convert("P") for seed in (1, 2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def _corrupt_png() -> bytes:
    good = bytearray(_encode(_pattern(5), "PNG"))
    start = good.index(b"IDAT") + 4
    good[start + 20 : start + 220] = bytes(range(200))
    return bytes(good)


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    (photos / "ana").mkdir(parents=True)
    (photos / "bo").mkdir(parents=True)
    original = _pattern(1)
    files = {
        "ana/good.jpg": _encode(original, quality=95),
        "ana/resized-copy.jpg": _encode(original.resize((160, 120)), quality=70),
        "bo/exact-copy.jpg": _encode(original, quality=95),
        "bo/other.png": _encode(_pattern(2), "PNG"),
        "ana/truncated.jpg": _encode(_pattern(3))[:1500],
        "ana/corrupt.png": _corrupt_png(),
        "ana/page.jpg": b"<!doctype html><html><body>404</body></html>",
        "ana/empty.jpg": b"",
        "bo/small.jpg": _encode(_pattern(4, (90, 60))),
        "bo/animated.gif": _animated_gif(),
        "bo/huge.png": flat_png(10_000, 8_000),
        "bo/drawing.ico": _encode(_pattern(6, (64, 64)), "ICO"),
    }
    for name, content in files.items():
        (photos / name).write_bytes(content)
    return tmp_path


def test_each_unusable_file_goes_to_quarantine_with_its_reason(collection: Path) -> None:
    report = check_collection(collection, CheckOptions(min_side_px=100))

    reasons = {verdict["path"]: verdict["reason"] for verdict in report.verdicts}
    assert reasons == {
        "photos/ana/good.jpg": "",
        "photos/ana/resized-copy.jpg": "duplicate",
        "photos/bo/exact-copy.jpg": "duplicate",
        "photos/bo/other.png": "",
        "photos/ana/truncated.jpg": "truncated",
        "photos/ana/corrupt.png": "corrupt",
        "photos/ana/page.jpg": "not-an-image",
        "photos/ana/empty.jpg": "not-an-image",
        "photos/bo/small.jpg": "too-small",
        "photos/bo/animated.gif": "animated",
        "photos/bo/huge.png": "too-many-pixels",
        "photos/bo/drawing.ico": "unsupported-format",
    }
    assert sorted(path.name for path in (collection / "photos").rglob("*.*")) == [
        "good.jpg",
        "other.png",
    ]
    assert (collection / QUARANTINE_DIR / "truncated" / "ana" / "truncated.jpg").is_file()
    assert (collection / QUARANTINE_DIR / "duplicate" / "bo" / "exact-copy.jpg").is_file()


def test_duplicates_keep_the_photo_with_most_pixels(collection: Path) -> None:
    report = check_collection(collection, CheckOptions(min_side_px=100))

    duplicate = next(v for v in report.verdicts if v["path"] == "photos/ana/resized-copy.jpg")
    # good.jpg and exact-copy.jpg tie on pixels and bytes; the first path wins.
    assert duplicate["detail"] == "kept photos/ana/good.jpg"


def test_report_is_written_with_counts_and_every_file(collection: Path) -> None:
    report = check_collection(collection, CheckOptions(min_side_px=100))

    written = json.loads((collection / REPORT_FILE).read_text(encoding="utf-8"))
    assert written["counts"]["kept"] == 2
    assert written["counts"]["duplicate"] == 2
    assert len(written["files"]) == 12
    assert "kept 2" in report.render()
    assert "quarantined as truncated: 1" in report.render()


def test_second_check_finds_nothing_more_to_move(collection: Path) -> None:
    check_collection(collection, CheckOptions(min_side_px=100))

    again = check_collection(collection, CheckOptions(min_side_px=100))

    assert [verdict["status"] for verdict in again.verdicts] == ["kept", "kept"]


def test_name_clash_in_quarantine_gets_a_suffix(collection: Path) -> None:
    check_collection(collection, CheckOptions(min_side_px=100))
    (collection / "photos" / "ana" / "truncated.jpg").write_bytes(_encode(_pattern(9))[:900])

    check_collection(collection, CheckOptions(min_side_px=100))

    names = sorted(path.name for path in (collection / QUARANTINE_DIR / "truncated").rglob("*"))
    assert names == ["ana", "truncated-1.jpg", "truncated.jpg"]


def test_folder_without_photos_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="memberlens collect"):
        check_collection(tmp_path, CheckOptions())
