"""Decode uploaded or stored photo bytes into upright RGB arrays, refusing what is not a photo.

Every photo of memberlens, whether served or used for training, enters through `decode_photo`.
"""

import io
import logging
import struct
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from data_tools.errors import InvalidPhotoError, PhotoTooLargeError, UnsupportedPhotoTypeError

logger = logging.getLogger(__name__)

ACCEPTED_TYPES_TEXT = "JPEG, PNG, WebP, GIF, BMP, TIFF or AVIF"

# Leading bytes of image formats: bytes that start like this claim to be a photo, so a failure
# to decode them means a corrupt or truncated photo rather than the wrong kind of file.
_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
# ISO media brands of still-image formats (HEIC, AVIF), found at byte 8 after `ftyp`.
_ISO_IMAGE_BRANDS = (
    b"heic",
    b"heix",
    b"hevc",
    b"heim",
    b"heis",
    b"mif1",
    b"msf1",
    b"avif",
    b"avis",
)
# Leading bytes of common files that are not photos at all.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "an executable"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg media file"),
    (b"\x1a\x45\xdf\xa3", "a Matroska or WebM video"),
)
_TEXT_SNIFF_BYTES = 4096


def decode_photo(photo_bytes: bytes, *, max_bytes: int, max_pixels: int) -> NDArray[np.uint8]:
    """Decode photo bytes into an upright RGB array.

    The pixel count is checked from the header before any pixel is decoded. EXIF orientation
    is applied, every colour mode is converted to RGB (alpha is laid over white, 16-bit grey is
    scaled to 8 bits) and animations give their first frame.

    Args:
        photo_bytes: the encoded file, as uploaded or read from disk.
        max_bytes: largest accepted encoded size, in bytes.
        max_pixels: largest accepted width * height, in pixels.

    Returns:
        The photo as (height, width, 3) RGB uint8, C-contiguous.

    Raises:
        InvalidPhotoError: empty, corrupt or truncated image bytes.
        PhotoTooLargeError: more than `max_bytes` bytes or more than `max_pixels` pixels.
        UnsupportedPhotoTypeError: bytes of a file that is not an image memberlens reads.
    """
    _check_byte_size(photo_bytes, max_bytes)
    image = _open_header(photo_bytes)
    _check_pixel_count(image, max_pixels)
    _decode_pixels(image)
    upright = _apply_exif_orientation(image)
    rgb = _to_rgb(upright)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def load_photo(path: Path, *, max_bytes: int, max_pixels: int) -> NDArray[np.uint8]:
    """Read a photo file and decode it as `decode_photo` does.

    Raises:
        InvalidPhotoError: the file cannot be read, or its bytes are not a readable photo.
        PhotoTooLargeError: the file or its pixel count is over the limits.
        UnsupportedPhotoTypeError: the file is not an image memberlens reads.
    """
    try:
        size_bytes = path.stat().st_size
    except OSError as err:
        raise InvalidPhotoError(
            f"Expected a readable photo file at {path}, but it cannot be opened ({err}); "
            "check the path and its permissions."
        ) from err
    # Checked before reading so that a huge file is never loaded into memory.
    _check_byte_size_value(size_bytes, max_bytes)
    try:
        photo_bytes = path.read_bytes()
    except OSError as err:
        raise InvalidPhotoError(
            f"Expected a readable photo file at {path}, but reading it failed ({err}); "
            "check the path and its permissions."
        ) from err
    return decode_photo(photo_bytes, max_bytes=max_bytes, max_pixels=max_pixels)


def _check_byte_size(photo_bytes: bytes, max_bytes: int) -> None:
    if not photo_bytes:
        raise InvalidPhotoError(
            "Expected the bytes of a photo, but got an empty file; send a JPEG or PNG photo."
        )
    _check_byte_size_value(len(photo_bytes), max_bytes)


def _check_byte_size_value(size_bytes: int, max_bytes: int) -> None:
    if size_bytes > max_bytes:
        raise PhotoTooLargeError(
            f"Expected a photo of at most {max_bytes} bytes, but got {size_bytes} bytes; "
            "send a smaller or more compressed photo."
        )


def _open_header(photo_bytes: bytes) -> Image.Image:
    """Parse the header only: Pillow decodes no pixel until `load`."""
    try:
        return Image.open(io.BytesIO(photo_bytes))
    except Image.DecompressionBombError as err:
        raise PhotoTooLargeError(
            f"Expected a photo of a reasonable pixel count, but its header claims more than "
            f"{2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels; send a smaller photo."
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as err:
        raise _unreadable_error(photo_bytes) from err


def _check_pixel_count(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidPhotoError(
            f"Expected a photo with a positive width and height, but its header says "
            f"{width}x{height}; the file is corrupt, send another copy."
        )
    if width * height > max_pixels:
        raise PhotoTooLargeError(
            f"Expected a photo of at most {max_pixels} pixels, but it is {width}x{height} "
            f"({width * height} pixels); resize it and send it again."
        )


def _decode_pixels(image: Image.Image) -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Some library switched Pillow to pad truncated files with grey; say so, since a
        # truncated photo would then decode as if it were whole.
        logger.warning("pillow accepts truncated images; truncated photos are not refused")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError) as err:
        raise InvalidPhotoError(
            f"Expected a complete {image.format or 'image'} file, but decoding it failed "
            f"({err}); the file is corrupt or truncated, send a complete copy."
        ) from err


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    try:
        upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, struct.error, KeyError, TypeError) as err:
        # A broken EXIF block should not cost the photo: its pixels decoded fine.
        logger.warning(
            "exif orientation unreadable, photo kept as stored", extra={"error": str(err)}
        )
        return image
    return upright if upright is not None else image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_depth_grey_to_rgb(image)
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        return _over_white(image.convert("RGBA"))
    try:
        return image.convert("RGB")
    except ValueError as err:
        raise UnsupportedPhotoTypeError(
            f"Expected a photo in a colour mode that converts to RGB, but it is in mode {mode}; "
            "save it as an ordinary RGB JPEG or PNG."
        ) from err


def _high_depth_grey_to_rgb(image: Image.Image) -> Image.Image:
    """Scale 16-bit (or 32-bit integer / float) grey to 8 bits instead of clipping it at 255."""
    grey = np.asarray(image).astype(np.float64)
    if image.mode == "F" and grey.size and float(np.nanmax(grey)) <= 1.0:
        grey = grey * 255.0  # float photos are stored either in [0, 1] or in 8-bit units
    elif image.mode != "F":
        grey = grey / 257.0  # 65535 / 257 == 255
    grey8 = np.clip(np.nan_to_num(grey), 0.0, 255.0).round().astype(np.uint8)
    return Image.fromarray(np.repeat(grey8[:, :, None], 3, axis=2))


def _over_white(image: Image.Image) -> Image.Image:
    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, image).convert("RGB")


def _unreadable_error(photo_bytes: bytes) -> InvalidPhotoError | UnsupportedPhotoTypeError:
    """Tell a corrupt photo (it claims to be an image) from a file of another kind."""
    claimed_format = _claimed_image_format(photo_bytes)
    if claimed_format == "HEIC":
        return UnsupportedPhotoTypeError(
            f"Expected one of {ACCEPTED_TYPES_TEXT}, but got a HEIC/HEIF photo; export it as JPEG."
        )
    if claimed_format is not None:
        return InvalidPhotoError(
            f"Expected a readable {claimed_format} photo, but its header is corrupt; "
            "send a complete, uncorrupted copy."
        )
    other_kind = _other_file_kind(photo_bytes)
    if other_kind is not None:
        return UnsupportedPhotoTypeError(
            f"Expected a photo ({ACCEPTED_TYPES_TEXT}), but got {other_kind}; send a photo file."
        )
    return InvalidPhotoError(
        f"Expected a photo ({ACCEPTED_TYPES_TEXT}), but the bytes are not a recognisable image; "
        "send a complete photo file."
    )


def _claimed_image_format(photo_bytes: bytes) -> str | None:
    for signature, image_format in _IMAGE_SIGNATURES:
        if photo_bytes.startswith(signature):
            return image_format
    if photo_bytes.startswith(b"BM") and photo_bytes[6:10] == b"\x00\x00\x00\x00":
        return "BMP"  # two letters alone would also match text: the reserved bytes must be 0
    if photo_bytes.startswith(b"RIFF") and photo_bytes[8:12] == b"WEBP":
        return "WebP"
    if photo_bytes[4:8] == b"ftyp" and photo_bytes[8:12] in _ISO_IMAGE_BRANDS:
        return "AVIF" if photo_bytes[8:12] in (b"avif", b"avis") else "HEIC"
    return None


def _other_file_kind(photo_bytes: bytes) -> str | None:
    for signature, kind in _OTHER_SIGNATURES:
        if photo_bytes.startswith(signature):
            return kind
    if photo_bytes[4:8] == b"ftyp":
        return "a video or audio file"
    head = photo_bytes[:_TEXT_SNIFF_BYTES]
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        # A multi-byte character cut by the sniff limit still leaves text.
        is_cut_at_limit = len(photo_bytes) > len(head) and err.start >= len(head) - 3
        if not is_cut_at_limit:
            return None
        text = head[: err.start].decode("utf-8")
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if "<svg" in lowered[:1024]:
        return "an SVG drawing (vector images are not taken)"
    if lowered.startswith(("<!doctype html", "<html")) or "<html" in lowered[:1024]:
        return "an HTML page"
    if lowered.startswith(("{", "[")):
        return "a JSON or other text document"
    return "a text file"
