"""Own every domain exception of memberlens, so that each layer raises and the edge maps them."""


class MemberlensError(Exception):
    """Base of every error that memberlens raises on purpose."""


class InvalidPhotoError(MemberlensError):
    """Raised when uploaded bytes cannot be decoded as a photo."""


class PhotoTooLargeError(MemberlensError):
    """Raised when a photo exceeds the byte or pixel limit."""


class UnsupportedPhotoTypeError(MemberlensError):
    """Raised when the bytes are a type of file that memberlens does not take."""


class DatasetError(MemberlensError):
    """Raised when a folder of photos or labels cannot be used as asked."""


class WeightsFormatError(MemberlensError):
    """Raised when a weights file is missing, truncated or not in the expected format."""


class BundleLoadError(MemberlensError):
    """Raised when a model bundle is missing, incomplete or inconsistent."""


class UnknownMemberError(MemberlensError):
    """Raised when a member slug is not in the roster."""


class InvalidParameterError(MemberlensError):
    """Raised when a caller passes a parameter outside its allowed range."""


class ModelNotLoadedError(MemberlensError):
    """Raised when inference is asked for before a model bundle is loaded."""


class TrainingError(MemberlensError):
    """Raised when a training run fails part of the way, for example in a worker process."""
