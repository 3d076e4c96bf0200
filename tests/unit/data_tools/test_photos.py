"""Tests of `decode_photo` and `load_photo`: refusals, EXIF orientation and colour modes."""

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_tools.errors import InvalidPhotoError, PhotoTooLargeError, UnsupportedPhotoTypeError
from data_tools.photos import decode_photo, load_photo

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 50_000_000
EXIF_ORIENTATION_TAG = 0x0112


def _encode(image: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def _decode(photo_bytes: bytes) -> np.ndarray:
    return decode_photo(photo_bytes, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    checksum = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", checksum)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header claims `width` x `height` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def _gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :].repeat(height, axis=0)
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None].repeat(width, axis=1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=2).astype(np.uint8))


def test_empty_bytes_are_an_invalid_photo() -> None:
    with pytest.raises(InvalidPhotoError, match="empty"):
        _decode(b"")


def test_bytes_over_the_limit_are_too_large() -> None:
    photo_bytes = _encode(_gradient(), "PNG")

    with pytest.raises(PhotoTooLargeError, match="bytes"):
        decode_photo(photo_bytes, max_bytes=len(photo_bytes) - 1, max_pixels=MAX_PIXELS)


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"just some notes about a photo\n", "text"),
        (b"<!DOCTYPE html><html><body>hello</body></html>", "HTML"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "ZIP"),
    ],
)
def test_other_kinds_of_file_are_unsupported(payload: bytes, kind: str) -> None:
    with pytest.raises(UnsupportedPhotoTypeError, match=kind):
        _decode(payload)


def test_truncated_jpeg_is_invalid_rather_than_half_grey() -> None:
    photo_bytes = _encode(_gradient(256, 192), "JPEG", quality=90)

    with pytest.raises(InvalidPhotoError, match="truncated"):
        _decode(photo_bytes[: len(photo_bytes) // 2])


def test_corrupt_png_header_is_invalid() -> None:
    photo_bytes = b"\x89PNG\r\n\x1a\n" + b"\x13" * 64

    with pytest.raises(InvalidPhotoError, match="PNG"):
        _decode(photo_bytes)


def test_unrecognisable_binary_is_invalid() -> None:
    photo_bytes = bytes(range(1, 256)) * 4

    with pytest.raises(InvalidPhotoError):
        _decode(photo_bytes)


def test_header_claiming_huge_dimensions_is_refused_without_decoding() -> None:
    photo_bytes = _png_claiming(20_000, 20_000)
    started = time.perf_counter()

    with pytest.raises(PhotoTooLargeError):
        _decode(photo_bytes)

    assert time.perf_counter() - started < 1.0


def test_pixel_limit_is_checked_from_the_header() -> None:
    photo_bytes = _png_claiming(8_000, 8_000)

    with pytest.raises(PhotoTooLargeError, match="8000x8000"):
        _decode(photo_bytes)


def test_exif_rotation_by_90_degrees_swaps_width_and_height() -> None:
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[0:4, 0:4] = (255, 0, 0)  # a red mark at the stored top-left corner
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6  # display rotated 90 degrees clockwise
    photo_bytes = _encode(Image.fromarray(stored), "PNG", exif=exif.tobytes())

    photo = _decode(photo_bytes)

    assert photo.shape == (40, 20, 3)
    assert tuple(photo[1, 18]) == (255, 0, 0)  # the mark is now at the top-right


def test_cmyk_jpeg_converts_to_rgb() -> None:
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in ink
    photo_bytes = _encode(cmyk, "JPEG", quality=95)

    photo = _decode(photo_bytes)

    assert photo.shape == (32, 32, 3)
    red, green, blue = photo[16, 16].astype(int)
    assert red > 230 and green < 30 and blue < 30


def test_palette_png_converts_to_its_colours() -> None:
    palette_image = Image.new("P", (8, 8), 1)
    palette_image.putpalette([0, 0, 0, 10, 200, 30] + [0] * (254 * 3))
    photo_bytes = _encode(palette_image, "PNG")

    photo = _decode(photo_bytes)

    assert tuple(photo[3, 3]) == (10, 200, 30)


def test_transparent_pixels_become_white_and_opaque_ones_keep_their_colour() -> None:
    rgba = np.zeros((4, 8, 4), dtype=np.uint8)
    rgba[:, :4] = (20, 40, 60, 255)
    rgba[:, 4:] = (20, 40, 60, 0)
    photo_bytes = _encode(Image.fromarray(rgba, "RGBA"), "PNG")

    photo = _decode(photo_bytes)

    assert tuple(photo[0, 0]) == (20, 40, 60)
    assert tuple(photo[0, 7]) == (255, 255, 255)


def test_16_bit_grey_is_scaled_to_8_bits_not_clipped() -> None:
    grey = np.array([[0, 32896, 65535]], dtype=np.uint16)
    photo_bytes = _encode(Image.fromarray(grey), "PNG")

    photo = _decode(photo_bytes)

    assert photo.shape == (1, 3, 3)
    assert photo[0, :, 0].tolist() == [0, 128, 255]


def test_greyscale_with_alpha_converts_to_rgb() -> None:
    image = Image.new("LA", (5, 5), (100, 255))
    photo_bytes = _encode(image, "PNG")

    photo = _decode(photo_bytes)

    assert tuple(photo[2, 2]) == (100, 100, 100)


def test_animation_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)

    photo = _decode(buffer.getvalue())

    red, _, blue = photo[5, 5].astype(int)
    assert red > 200 and blue < 50


def test_decoded_photo_is_contiguous_uint8_rgb() -> None:
    photo_bytes = _encode(_gradient(30, 20).convert("L"), "JPEG")

    photo = _decode(photo_bytes)

    assert photo.dtype == np.uint8
    assert photo.shape == (20, 30, 3)
    assert photo.flags["C_CONTIGUOUS"]


def test_load_photo_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(_encode(_gradient(16, 12), "PNG"))

    photo = load_photo(path, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)

    assert photo.shape == (12, 16, 3)


def test_load_photo_of_a_missing_file_is_an_invalid_photo(tmp_path: Path) -> None:
    with pytest.raises(InvalidPhotoError, match="cannot be opened"):
        load_photo(tmp_path / "absent.jpg", max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)


def test_load_photo_refuses_a_large_file_before_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"\x00" * 2048)

    with pytest.raises(PhotoTooLargeError):
        load_photo(path, max_bytes=1024, max_pixels=MAX_PIXELS)
