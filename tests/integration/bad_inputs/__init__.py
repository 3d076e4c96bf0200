"""Build the corpus of bad and odd uploads in memory: no photo of it is ever committed.

`bad_inputs` are requests that must get one exact 4xx and error code. `odd_photos` are real
photos in unusual encodings that must be accepted, with the upright size they must report.
"""

import gzip
import io
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pillow_heif
from PIL import Image

MULTIPART = "multipart/form-data; boundary=corpus"


@dataclass(frozen=True)
class BadInput:
    """One bad request and the status and error code it must get."""

    name: str
    status: int
    code: str
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    data: dict[str, str] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    path: str = "/v1/identify"

    def request_arguments(self) -> dict[str, Any]:
        """Return the keyword arguments of `httpx.Client.post` for this request."""
        arguments: dict[str, Any] = {"headers": self.headers}
        if self.files is not None:
            arguments["files"] = self.files
        if self.data is not None:
            arguments["data"] = self.data
        if self.content is not None:
            arguments["content"] = self.content
        return arguments


@dataclass(frozen=True)
class OddPhoto:
    """A valid photo in an unusual encoding and the upright size it must be reported at."""

    name: str
    photo: bytes
    width: int
    height: int


def bad_inputs(max_upload_bytes: int, max_pixels: int) -> list[BadInput]:
    """Return every bad request of the corpus, for a server with these limits."""
    return [
        *_unreadable_photos(),
        *_other_file_kinds(),
        *_too_large(max_upload_bytes, max_pixels),
        *_malformed_requests(),
    ]


def odd_photos() -> list[OddPhoto]:
    """Return valid photos in unusual modes and formats, with their upright sizes."""
    pillow_heif.register_heif_opener()  # lets Pillow write the HEIC photo
    rgb = _gradient(64, 48)
    return [
        OddPhoto("cmyk.jpg", _encode(rgb.convert("CMYK"), "JPEG"), 64, 48),
        OddPhoto("grey16.png", _encode(_grey16(64, 48), "PNG"), 64, 48),
        OddPhoto("rgba.png", _encode(rgb.convert("RGBA"), "PNG"), 64, 48),
        OddPhoto("grey-alpha.png", _encode(rgb.convert("LA"), "PNG"), 64, 48),
        OddPhoto("palette-transparent.png", _palette_with_transparency(), 64, 48),
        OddPhoto("animated.gif", _animated_gif(), 64, 48),
        OddPhoto("rotated-exif.jpg", _rotated_exif_jpeg(), 48, 64),
        OddPhoto("grey.jpg", _encode(rgb.convert("L"), "JPEG"), 64, 48),
        OddPhoto("bilevel.bmp", _encode(rgb.convert("1"), "BMP"), 64, 48),
        OddPhoto("rgb.bmp", _encode(rgb, "BMP"), 64, 48),
        OddPhoto("cmyk.tiff", _encode(rgb.convert("CMYK"), "TIFF"), 64, 48),
        OddPhoto("rgb.webp", _encode(rgb, "WEBP"), 64, 48),
        OddPhoto("photo.heic", _encode(rgb, "HEIF"), 64, 48),
        OddPhoto("one-pixel.png", _encode(Image.new("RGB", (1, 1)), "PNG"), 1, 1),
        OddPhoto("thin.png", _encode(Image.new("RGB", (20_000, 10), (9, 9, 9)), "PNG"), 20_000, 10),
    ]


def _unreadable_photos() -> list[BadInput]:
    jpeg = _encode(_noise(128, 128), "JPEG")
    png = _encode(_noise(128, 128), "PNG")
    return [
        _photo("zero-bytes.jpg", b"", 400, "invalid_photo"),
        _photo("truncated.jpg", jpeg[: len(jpeg) // 2], 400, "invalid_photo"),
        _photo("truncated.png", png[: len(png) // 2], 400, "invalid_photo"),
        _photo("jpeg-marker-only.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", 400, "invalid_photo"),
        _photo("png-signature-only.png", b"\x89PNG\r\n\x1a\n", 400, "invalid_photo"),
        _photo("png-bad-crc.png", _corrupt_png_crc(png), 400, "invalid_photo"),
        _photo(
            "random-bytes.jpg",
            bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8)),
            400,
            "invalid_photo",
        ),
        _photo("zero-width.png", _png_header_only(0, 10), 400, "invalid_photo"),
    ]


def _other_file_kinds() -> list[BadInput]:
    rgb = _gradient(32, 32)
    return [
        _photo("text.jpg", b"hello, this is not a photo\n", 415, "unsupported_photo_type"),
        _photo(
            "page.jpg",
            b"<!doctype html><html><body>hi</body></html>",
            415,
            "unsupported_photo_type",
        ),
        _photo(
            "drawing.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
            415,
            "unsupported_photo_type",
        ),
        _photo("data.json", b'{"image": "not really"}', 415, "unsupported_photo_type"),
        _photo(
            "paper.pdf",
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
            415,
            "unsupported_photo_type",
        ),
        _photo("archive.zip", b"PK\x03\x04" + b"\x00" * 60, 415, "unsupported_photo_type"),
        _photo("archive.gz", gzip.compress(b"not a photo"), 415, "unsupported_photo_type"),
        _photo("program.jpg", b"\x7fELF\x02\x01\x01" + b"\x00" * 57, 415, "unsupported_photo_type"),
        _photo(
            "song.mp3",
            b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 64,
            415,
            "unsupported_photo_type",
        ),
        _photo(
            "clip.mp4",
            b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2",
            415,
            "unsupported_photo_type",
        ),
        _photo("icon.ico", _encode(rgb, "ICO"), 415, "unsupported_photo_type"),
        _photo("pixmap.ppm", _encode(rgb, "PPM"), 415, "unsupported_photo_type"),
        _photo("targa.tga", _encode(rgb, "TGA"), 415, "unsupported_photo_type"),
        _photo("paintbrush.pcx", _encode(rgb, "PCX"), 415, "unsupported_photo_type"),
    ]


def _too_large(max_upload_bytes: int, max_pixels: int) -> list[BadInput]:
    side = int(max_pixels**0.5) + 1
    wide = Image.new("RGB", (20_000, max_pixels // 20_000 + 1), (0, 0, 0))
    padded = _encode(_gradient(64, 48), "PNG") + b"\x00" * max_upload_bytes
    return [
        _photo("bomb.png", _png_header_only(100_000, 100_000), 413, "photo_too_large"),
        _photo("just-over-pixels.png", _png_header_only(side, side), 413, "photo_too_large"),
        _photo("twenty-thousand-wide.png", _encode(wide, "PNG"), 413, "photo_too_large"),
        _photo("bomb.gif", _gif_header_only(65_535, 65_535), 413, "photo_too_large"),
        _photo("bomb.jpg", _jpeg_claiming(65_500, 65_500), 413, "photo_too_large"),
        _photo("over-byte-limit.png", padded, 413, "photo_too_large"),
    ]


def _malformed_requests() -> list[BadInput]:
    png = _encode(_gradient(32, 32), "PNG")
    part = ("a.png", png, "image/png")
    no_filename = (
        b'--corpus\r\nContent-Disposition: form-data; name="image"\r\n\r\n'
        + png
        + b"\r\n--corpus--\r\n"
    )
    return [
        BadInput("wrong-field", 422, "invalid_parameters", files=[("photo", part)]),
        BadInput(
            "no-file-field",
            422,
            "invalid_parameters",
            data={"note": "hi"},
            files=[("other", ("a.txt", b"x", "text/plain"))],
        ),
        BadInput("no-body", 422, "invalid_parameters"),
        BadInput(
            "json-body",
            422,
            "invalid_parameters",
            content=b'{"image": "aGk="}',
            headers={"content-type": "application/json"},
        ),
        BadInput("urlencoded-body", 422, "invalid_parameters", data={"image": "hello"}),
        BadInput("two-files", 422, "invalid_parameters", files=[("image", part), ("image", part)]),
        BadInput(
            "image-as-text",
            422,
            "invalid_parameters",
            data={"image": "hello"},
            files=[("other", ("a.txt", b"x", "text/plain"))],
        ),
        BadInput(
            "no-filename",
            422,
            "invalid_parameters",
            content=no_filename,
            headers={"content-type": MULTIPART},
        ),
        BadInput(
            "broken-multipart",
            422,
            "invalid_parameters",
            content=b"--corpus\r\ngarbage\r\n\r\nxx",
            headers={"content-type": MULTIPART},
        ),
        BadInput(
            "multipart-without-boundary",
            422,
            "invalid_parameters",
            content=b"x",
            headers={"content-type": "multipart/form-data"},
        ),
        BadInput(
            "top-k-negative",
            422,
            "invalid_parameters",
            files=[("image", part)],
            path="/v1/identify?top_k=-1",
        ),
        BadInput(
            "top-k-word",
            422,
            "invalid_parameters",
            files=[("image", part)],
            path="/v1/identify?top_k=three",
        ),
        BadInput(
            "min-face-size-huge",
            422,
            "invalid_parameters",
            files=[("image", part)],
            path="/v1/identify?min_face_size=99999999999",
        ),
        BadInput(
            "landmarks-maybe",
            422,
            "invalid_parameters",
            files=[("image", part)],
            path="/v1/identify?landmarks=maybe",
        ),
        BadInput(
            "batch-too-many",
            422,
            "invalid_parameters",
            files=[("images", part)] * 9,
            path="/v1/identify/batch",
        ),
        BadInput(
            "batch-wrong-field",
            422,
            "invalid_parameters",
            files=[("image", part)],
            path="/v1/identify/batch",
        ),
    ]


def _photo(name: str, photo: bytes, status: int, code: str) -> BadInput:
    return BadInput(
        name, status, code, files=[("image", (name, photo, "application/octet-stream"))]
    )


def _encode(image: Image.Image, image_format: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    pixels = np.concatenate(
        [
            np.broadcast_to(x, (height, width, 1)),
            np.broadcast_to(y, (height, width, 1)),
            np.full((height, width, 1), 128, np.float32),
        ],
        axis=2,
    )
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def _noise(width: int, height: int) -> Image.Image:
    return Image.effect_noise((width, height), 64).convert("RGB")


def _grey16(width: int, height: int) -> Image.Image:
    pixels = np.linspace(0, 65_535, width * height, dtype=np.float64).reshape(height, width)
    return Image.fromarray(pixels.astype(np.uint16))


def _palette_with_transparency() -> bytes:
    image = _gradient(64, 48).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _encode(image, "PNG", transparency=0)


def _animated_gif() -> bytes:
    frames = [
        Image.new("RGB", (64, 48), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))
    ]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _rotated_exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored 64x48 pixels are shown turned 90 degrees
    return _encode(_gradient(64, 48), "JPEG", exif=exif.tobytes())


def _png_header_only(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    checksum = zlib.crc32(chunk_type + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + chunk_type + payload + struct.pack(">I", checksum)


def _corrupt_png_crc(png: bytes) -> bytes:
    corrupted = bytearray(png)
    corrupted[29] ^= 0xFF  # the last byte of IHDR's checksum
    return bytes(corrupted)


def _gif_header_only(width: int, height: int) -> bytes:
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", width, height, 0, 0, 0)
        + b",\x00\x00\x00\x00"
        + struct.pack("<HH", width, height)
        + b"\x00\x02\x02D\x01\x00;"
    )


def _jpeg_claiming(width: int, height: int) -> bytes:
    jpeg = bytearray(_encode(_gradient(16, 16), "JPEG"))
    marker = jpeg.find(b"\xff\xc0")
    struct.pack_into(">HH", jpeg, marker + 5, height, width)
    return bytes(jpeg)
