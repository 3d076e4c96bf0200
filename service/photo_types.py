"""Refuse files that Pillow can read but that are not photo types the API takes (415)."""

import io
import logging
import warnings

from PIL import Image

from data_tools.errors import UnsupportedPhotoTypeError

logger = logging.getLogger(__name__)

# Pillow's names of the formats the API takes. MPO is the JPEG variant many cameras write;
# HEIF comes from the pillow-heif plugin.
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF"})
ACCEPTED_TYPES_TEXT = "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF or AVIF"


def check_photo_type(photo_bytes: bytes) -> None:
    """Raise UnsupportedPhotoTypeError if the bytes are an image of a format not taken.

    Only the header is parsed. Bytes that Pillow cannot open at all are let through: the photo
    decoder then tells a corrupt photo (400) from a file of another kind (415).

    Raises:
        UnsupportedPhotoTypeError: an image format outside `ACCEPTED_FORMATS` (ICO, PPM, ...).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(photo_bytes)) as image:
                image_format = image.format
    except Exception:
        # Broad on purpose: any failure here is diagnosed precisely by the decoder next.
        return
    if image_format not in ACCEPTED_FORMATS:
        raise UnsupportedPhotoTypeError(
            f"Expected a photo as {ACCEPTED_TYPES_TEXT}, but got a {image_format} image; "
            "convert it to JPEG or PNG and send it again."
        )
