"""Find faces in a photo: the `Face` record, the detector protocol and the MTCNN detector.

Training crops and serving crops both start here, so both see the very same detections.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from data_tools.errors import InvalidParameterError

if TYPE_CHECKING:
    from facenet_pytorch import MTCNN

logger = logging.getLogger(__name__)

# Measured with benchmarks/detector_recall.py on the 196 shared BTS photos (1,306 labelled
# faces): a 1024 px cap kept full-size recall (0.974) while cutting the time of the larger
# photos; 800 and 640 px lost 0.2 and 0.6 points, and a 40 px minimum face lost 2.4 points.
DEFAULT_MIN_FACE_SIZE_PX = 20
DEFAULT_MAX_SIDE_PX: int | None = 1024
DEFAULT_THRESHOLDS = (0.6, 0.7, 0.7)
DEFAULT_SCALE_FACTOR = 0.709
# MTCNN's smallest window is 12 px: a photo side under this cannot hold a face.
_MTCNN_WINDOW_PX = 12


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: (x_min, y_min, x_max, y_max) in photo pixels, clipped to the photo.
        landmarks: (5, 2) float32 (x, y) photo pixels, in the order left eye, right eye, nose,
            left mouth corner, right mouth corner (left and right as seen in the photo).
        detection_score: the detector's confidence in [0, 1].
    """

    box: tuple[float, float, float, float]
    landmarks: NDArray[np.float32]
    detection_score: float


class FaceDetector(Protocol):
    """Anything that finds faces in an RGB photo."""

    def detect(self, photo: NDArray[np.uint8]) -> list[Face]:
        """Return the faces of a (H, W, 3) RGB uint8 photo, highest detection score first."""
        ...


class MtcnnDetector:
    """Detect faces with facenet-pytorch's MTCNN on the CPU, with weights from its wheel."""

    def __init__(
        self,
        *,
        min_face_size_px: int = DEFAULT_MIN_FACE_SIZE_PX,
        max_side_px: int | None = DEFAULT_MAX_SIDE_PX,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        scale_factor: float = DEFAULT_SCALE_FACTOR,
    ) -> None:
        """Load the three MTCNN networks.

        Args:
            min_face_size_px: smallest face searched for, in pixels of the image MTCNN sees
                (the downscaled copy when `max_side_px` applies); at least 12.
            max_side_px: if set, photos whose longer side exceeds it are detected on a copy
                downscaled to this side, and results are mapped back to photo pixels. This is
                what makes large photos faster: MTCNN's image pyramid starts from the
                copy, so faces under `min_face_size_px` there (larger in the photo) are missed.
            thresholds: the P-Net, R-Net and O-Net score thresholds, each in (0, 1).
            scale_factor: the step between image pyramid levels, in (0, 1).

        Raises:
            InvalidParameterError: an option outside its range.
        """
        _check_options(min_face_size_px, max_side_px, thresholds, scale_factor)
        self.min_face_size_px = min_face_size_px
        self.max_side_px = max_side_px
        self.thresholds = tuple(float(threshold) for threshold in thresholds)
        self.scale_factor = scale_factor
        self._mtcnn = _load_mtcnn(min_face_size_px, self.thresholds, scale_factor)

    def detect(self, photo: NDArray[np.uint8]) -> list[Face]:
        """Return the faces of a (H, W, 3) RGB uint8 photo, highest detection score first.

        Boxes and landmarks are in pixels of `photo`, whatever size detection ran at.

        Raises:
            InvalidParameterError: `photo` is not (H, W, 3) uint8.
        """
        if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
            raise InvalidParameterError(
                f"Expected a (H, W, 3) uint8 RGB photo, but got shape {photo.shape} of "
                f"{photo.dtype}; decode photos with data_tools.photos.decode_photo."
            )
        height, width = photo.shape[:2]
        detected = _resize(photo, self._detection_scale(width, height))
        if min(detected.shape[:2]) < self.min_face_size_px:
            # MTCNN's pyramid would have no level at all and its first stage fails.
            return []

        boxes, scores, points = self._mtcnn.detect(detected, landmarks=True)

        if boxes is None:
            return []
        scale_x = detected.shape[1] / width
        scale_y = detected.shape[0] / height
        faces = [
            _to_face(box, float(score), point, scale_x, scale_y, width, height)
            for box, score, point in zip(boxes, scores, points, strict=True)
        ]
        return sorted(faces, key=lambda face: face.detection_score, reverse=True)

    def _detection_scale(self, width: int, height: int) -> float:
        longer_side = max(width, height)
        if self.max_side_px is None or longer_side <= self.max_side_px:
            return 1.0
        return self.max_side_px / longer_side


def _check_options(
    min_face_size_px: int,
    max_side_px: int | None,
    thresholds: Sequence[float],
    scale_factor: float,
) -> None:
    if min_face_size_px < _MTCNN_WINDOW_PX:
        raise InvalidParameterError(
            f"Expected min_face_size_px of at least {_MTCNN_WINDOW_PX} (MTCNN's window), "
            f"but got {min_face_size_px}; raise it."
        )
    if max_side_px is not None and max_side_px < 4 * _MTCNN_WINDOW_PX:
        raise InvalidParameterError(
            f"Expected max_side_px of at least {4 * _MTCNN_WINDOW_PX} or none, but got "
            f"{max_side_px}; raise it or leave it unset to detect at full size."
        )
    if len(thresholds) != 3 or not all(0.0 < threshold < 1.0 for threshold in thresholds):
        raise InvalidParameterError(
            f"Expected three MTCNN thresholds in (0, 1), but got {list(thresholds)}; "
            "pass one each for P-Net, R-Net and O-Net."
        )
    if not 0.0 < scale_factor < 1.0:
        raise InvalidParameterError(
            f"Expected an MTCNN scale_factor in (0, 1), but got {scale_factor}; use about 0.7."
        )


def _load_mtcnn(
    min_face_size_px: int, thresholds: tuple[float, ...], scale_factor: float
) -> "MTCNN":
    # Imported here: torch takes seconds to import and the command line must start fast.
    import torch
    from facenet_pytorch import MTCNN

    # facenet-pytorch 2.5.3 loads pnet.pt, rnet.pt and onet.pt from its own package folder:
    # nothing is downloaded.
    mtcnn = MTCNN(
        keep_all=True,
        select_largest=False,
        min_face_size=min_face_size_px,
        thresholds=list(thresholds),
        factor=scale_factor,
        device=torch.device("cpu"),
    )
    mtcnn.eval()
    return mtcnn


def _resize(photo: NDArray[np.uint8], scale: float) -> NDArray[np.uint8]:
    if scale == 1.0:
        return np.ascontiguousarray(photo)
    height, width = photo.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Pillow widens its bilinear kernel when shrinking, so the copy is not aliased.
    resized = Image.fromarray(photo).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def _to_face(
    box: NDArray[np.floating],
    score: float,
    points: NDArray[np.floating],
    scale_x: float,
    scale_y: float,
    width: int,
    height: int,
) -> Face:
    """Map a detection on the (maybe downscaled) copy back to photo pixels."""
    # Pixel centres sit at integer coordinates in both images, hence the half-pixel shifts.
    x_min, x_max = ((float(box[i]) + 0.5) / scale_x - 0.5 for i in (0, 2))
    y_min, y_max = ((float(box[i]) + 0.5) / scale_y - 0.5 for i in (1, 3))
    landmarks = np.empty((5, 2), dtype=np.float32)
    landmarks[:, 0] = (np.asarray(points)[:, 0] + 0.5) / scale_x - 0.5
    landmarks[:, 1] = (np.asarray(points)[:, 1] + 0.5) / scale_y - 0.5
    clipped_box = (
        min(max(x_min, 0.0), float(width)),
        min(max(y_min, 0.0), float(height)),
        min(max(x_max, 0.0), float(width)),
        min(max(y_max, 0.0), float(height)),
    )
    return Face(box=clipped_box, landmarks=landmarks, detection_score=score)
