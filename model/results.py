"""Define the shapes that an identification returns, as DESIGN.md's HTTP contract spells them."""

from typing import Literal, NotRequired, Protocol, TypedDict


class BoxDict(TypedDict):
    """A box in pixels of the upright photo; `x_max` and `y_max` are exclusive."""

    x_min: int
    y_min: int
    x_max: int
    y_max: int


class ImageSizeDict(TypedDict):
    """Width and height of the upright photo, in pixels."""

    width: int
    height: int


class CandidateDict(TypedDict):
    """One member a face might be, with the face model's probability."""

    name: str
    score: float


class FaceDict(TypedDict):
    """One detected face, who it is (or `None` for nobody known) and its best candidates.

    `landmarks` is left out when the caller asked for no landmarks.
    """

    box: BoxDict
    detection_score: float
    landmarks: NotRequired[list[list[float]]]
    member: str | None
    candidates: list[CandidateDict]


class MemberDict(TypedDict):
    """One member found in the photo; `box` is `None` when only the whole image shows them."""

    name: str
    score: float
    source: Literal["face", "image"]
    box: BoxDict | None


class ModelInfoDict(TypedDict):
    """Which bundle and which thresholds produced an answer."""

    bundle: str
    thresholds: str


class IdentifyResult(TypedDict):
    """The whole answer for one photo."""

    image: ImageSizeDict
    members: list[MemberDict]
    faces: list[FaceDict]
    image_scores: dict[str, float]
    model: ModelInfoDict
    timings_ms: dict[str, float]


class Identifier(Protocol):
    """Anything that turns the bytes of one uploaded photo into an `IdentifyResult`."""

    @property
    def model_info(self) -> ModelInfoDict:
        """Name the bundle and thresholds that the next answer will use."""
        ...

    def identify(
        self,
        photo_bytes: bytes,
        *,
        min_face_size_px: int = ...,
        top_k: int = ...,
        return_landmarks: bool = ...,
    ) -> IdentifyResult:
        """Decode, detect, align and score one photo.

        Args:
            photo_bytes: the uploaded file.
            min_face_size_px: faces whose box has a side shorter than this, in photo pixels,
                are left out; faces under the detector's own minimum are never found.
            top_k: how many candidates to list per face, best first.
            return_landmarks: whether each face carries its five landmarks.

        Raises:
            InvalidPhotoError: the bytes are not a readable image.
            PhotoTooLargeError: the bytes or the pixels exceed the limits.
            UnsupportedPhotoTypeError: the bytes are a file type that is not taken.
            InvalidParameterError: an option is out of range.
        """
        ...
