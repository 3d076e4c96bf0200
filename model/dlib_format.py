"""Read dlib's binary serialisation of a DNN (such as its face descriptor) into typed layer records.

dlib itself is not needed: this module knows the byte format and nothing about any one network.
"""

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from data_tools.errors import WeightsFormatError

logger = logging.getLogger(__name__)

# dlib's float_details marks non-finite values with these exponents.
_EXPONENT_INF = 32000
_EXPONENT_NEGATIVE_INF = 32001
_EXPONENT_NAN = 32002
# The version numbers dlib writes before each wrapper of the layer stack (core.h).
_TAG_OR_SKIP_VERSION = 1
_ADD_LAYER_VERSION = 2
_INPUT_ADD_LAYER_VERSIONS = (2, 3)
_TENSOR_VERSION = 2
_ALIAS_TENSOR_VERSION = 1
_MAX_NAME_BYTES = 64
CONV_MODE = 0
"""dlib's `layer_mode` value for per-channel affine and batch-norm layers."""


@dataclass(frozen=True)
class InputRgbLayer:
    """dlib's `input_rgb_image(_sized)`: subtract a mean per channel, then divide by 256.

    `rows`/`cols` are 0 when the input layer does not fix the image size.
    """

    kind: ClassVar[str] = "input"
    mean_rgb: tuple[float, float, float]
    rows: int
    cols: int


@dataclass(frozen=True, eq=False)
class ConvLayer:
    """dlib's `con_`: a 2-D cross-correlation with a bias per filter.

    `weights` is float32 (num_filters, in_channels, kernel rows, kernel cols) and `biases` is
    float32 (num_filters,); both come from one flat parameter tensor in the file.
    """

    kind: ClassVar[str] = "con"
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    weights: NDArray[np.float32] = field(repr=False)
    biases: NDArray[np.float32] = field(repr=False)

    @property
    def num_filters(self) -> int:
        """Return the number of output channels."""
        return int(self.weights.shape[0])


@dataclass(frozen=True, eq=False)
class AffineLayer:
    """dlib's `affine_`: `output = input * gamma + beta`, per channel in `CONV_MODE`.

    `gamma` and `beta` are float32 arrays shaped as the alias tensors in the file describe them;
    in `CONV_MODE` that is one value per channel.
    """

    kind: ClassVar[str] = "affine"
    mode: int
    gamma: NDArray[np.float32] = field(repr=False)
    beta: NDArray[np.float32] = field(repr=False)


@dataclass(frozen=True)
class ReluLayer:
    """dlib's `relu_`."""

    kind: ClassVar[str] = "relu"


@dataclass(frozen=True)
class PoolLayer:
    """dlib's `max_pool_` or `avg_pool_`; a window of 0 means the whole input plane."""

    kind: ClassVar[str] = "pool"
    is_max: bool
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class AddPrevLayer:
    """dlib's `add_prev_`: adds a tagged earlier output; the tag id is not stored in the file."""

    kind: ClassVar[str] = "add_prev"


@dataclass(frozen=True)
class TagOrSkipLayer:
    """A `tagN` or `skipN` wrapper: dlib stores neither its id nor which of the two it is."""

    kind: ClassVar[str] = "tag_or_skip"


@dataclass(frozen=True, eq=False)
class FullyConnectedLayer:
    """dlib's `fc_`: `output = input @ weights (+ biases)`.

    `weights` is float32 (num_inputs, num_outputs), the transpose of PyTorch's `nn.Linear`
    layout; `biases` is float32 (num_outputs,) or None for `fc_no_bias`.
    """

    kind: ClassVar[str] = "fc"
    weights: NDArray[np.float32] = field(repr=False)
    biases: NDArray[np.float32] | None = field(repr=False)


@dataclass(frozen=True)
class MetricLossLayer:
    """dlib's `loss_metric_`; the file keeps its training margin and distance threshold."""

    kind: ClassVar[str] = "loss_metric"
    margin: float | None
    distance_threshold: float | None


Layer = (
    ConvLayer
    | AffineLayer
    | ReluLayer
    | PoolLayer
    | AddPrevLayer
    | TagOrSkipLayer
    | FullyConnectedLayer
)


@dataclass(frozen=True)
class DlibNetwork:
    """A parsed network: the loss, the input layer, then every layer from input to output."""

    loss: MetricLossLayer
    input_layer: InputRgbLayer
    layers: tuple[Layer, ...]


class DlibByteReader:
    """Read dlib's primitive encodings from a byte string, tracking the offset for errors."""

    def __init__(self, blob: bytes, source: str = "<bytes>") -> None:
        """Start reading `blob` at offset 0; `source` names it in error messages."""
        self._blob = blob
        self._source = source
        self.offset = 0

    @property
    def remaining(self) -> int:
        """Return how many bytes are left to read."""
        return len(self._blob) - self.offset

    def fail(self, problem: str) -> WeightsFormatError:
        """Build an error naming the source and the offset at which `problem` was met."""
        return WeightsFormatError(
            f"{self._source} is not a readable dlib network: {problem} at byte {self.offset} "
            f"of {len(self._blob)}. Expected a complete file written by dlib's serialize(); "
            "reinstall the package that ships it if it was cut short or altered."
        )

    def read_bytes(self, count: int, what: str) -> bytes:
        """Return the next `count` bytes, or raise if the input ends first."""
        if count > self.remaining:
            raise self.fail(
                f"input ends inside {what} (needs {count} bytes, {self.remaining} left)"
            )
        chunk = self._blob[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def read_int(self, what: str = "an integer") -> int:
        """Read dlib's variable-length integer: a control byte, then up to 8 little-endian bytes.

        The control byte holds the byte count in its low nibble and the sign in bit 7.
        """
        control = self.read_bytes(1, what)[0]
        if control & 0x70:
            self.offset -= 1
            raise self.fail(f"byte 0x{control:02x} cannot start {what}")
        size = control & 0x0F
        if size > 8:
            self.offset -= 1
            raise self.fail(f"{what} claims {size} bytes, more than 8")
        magnitude = int.from_bytes(self.read_bytes(size, what), "little")
        return -magnitude if control & 0x80 else magnitude

    def read_float(self, what: str = "a number") -> float:
        """Read dlib's portable float: an int64 mantissa, then an int16 power-of-two exponent."""
        mantissa = self.read_int(f"the mantissa of {what}")
        exponent = self.read_int(f"the exponent of {what}")
        if exponent == _EXPONENT_INF:
            return math.inf
        if exponent == _EXPONENT_NEGATIVE_INF:
            return -math.inf
        if exponent == _EXPONENT_NAN:
            return math.nan
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError as err:
            raise self.fail(f"{what} overflows (mantissa {mantissa}, exponent {exponent})") from err

    def read_bool(self, what: str = "a flag") -> bool:
        """Read a bool, which dlib writes as the character '1' or '0'."""
        char = self.read_bytes(1, what)
        if char not in (b"0", b"1"):
            self.offset -= 1
            raise self.fail(f"byte 0x{char[0]:02x} is not {what} ('0' or '1')")
        return char == b"1"

    def read_string(self, what: str = "a name") -> str:
        """Read a length-prefixed ASCII string."""
        length = self.read_int(f"the length of {what}")
        if length < 0:
            raise self.fail(f"{what} has negative length {length}")
        raw = self.read_bytes(length, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as err:
            raise self.fail(f"{what} is not ASCII text") from err

    def peek_name(self) -> str | None:
        """Return the short ASCII string that starts here, without consuming it, else None."""
        start = self.offset
        try:
            length = self.read_int()
            if not 0 < length <= min(_MAX_NAME_BYTES, self.remaining):
                return None
            raw = self._blob[self.offset : self.offset + length]
            text = raw.decode("ascii") if raw.isascii() else ""
            return text if text.isprintable() and text else None
        except WeightsFormatError:
            return None
        finally:
            self.offset = start

    def read_tensor(self, what: str = "a tensor") -> NDArray[np.float32]:
        """Read a tensor: version 2, four dimensions, then raw little-endian float32 values.

        Returns:
            A float32 array shaped (num_samples, k, nr, nc), owning its memory.
        """
        version = self.read_int(f"the version of {what}")
        if version != _TENSOR_VERSION:
            raise self.fail(f"{what} has version {version}, expected {_TENSOR_VERSION}")
        shape = self._read_dims(what)
        count = math.prod(shape)
        raw = self.read_bytes(4 * count, f"the values of {what}")
        return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32).reshape(shape)

    def read_alias_shape(self, what: str = "an alias tensor") -> tuple[int, int, int, int]:
        """Read an alias tensor, which stores only a version and the four dimensions of a view."""
        version = self.read_int(f"the version of {what}")
        if version != _ALIAS_TENSOR_VERSION:
            raise self.fail(f"{what} has version {version}, expected {_ALIAS_TENSOR_VERSION}")
        return self._read_dims(what)

    def _read_dims(self, what: str) -> tuple[int, int, int, int]:
        n, k, nr, nc = (self.read_int(f"a dimension of {what}") for _ in range(4))
        if min(n, k, nr, nc) < 0:
            raise self.fail(f"{what} has a negative dimension {(n, k, nr, nc)}")
        return n, k, nr, nc


def read_dlib_network(path: Path) -> DlibNetwork:
    """Read a network that dlib saved with `serialize(path) << net`.

    Raises:
        WeightsFormatError: the file is missing, truncated, or holds a layer this reader does
            not know.
    """
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise WeightsFormatError(
            f"cannot read dlib weights at {path}: {err.strerror}; check the path"
        ) from err
    network = parse_dlib_network(blob, source=str(path))
    logger.debug("dlib network read", extra={"path": str(path), "layers": len(network.layers)})
    return network


def parse_dlib_network(blob: bytes, source: str = "<bytes>") -> DlibNetwork:
    """Parse the bytes of a serialised `add_loss_layer` network into typed layers.

    dlib writes the layer stack recursively: every wrapper's version number first (outermost
    first), then the input layer, then each layer's details from the input side outwards.

    Raises:
        WeightsFormatError: the bytes end early, carry trailing data, or hold an unknown layer.
    """
    reader = DlibByteReader(blob, source)
    loss_version = reader.read_int("the loss layer version")
    if loss_version != 1:
        raise reader.fail(f"loss layer version is {loss_version}, expected 1")
    loss = _read_loss(reader)
    # Limitation: a version of 1 is read as a tag or skip wrapper, but older dlib releases also
    # wrote add_layer as version 1 — such files fail to parse; telling the two apart needs the
    # network's type, which the file does not hold.
    wrapper_versions: list[int] = []
    while True:
        version = reader.read_int("a layer version")
        name = reader.peek_name()
        if name is not None and name.startswith("input"):
            break
        if version not in (_TAG_OR_SKIP_VERSION, _ADD_LAYER_VERSION):
            raise reader.fail(f"layer version {version} is not one this reader knows (1 or 2)")
        wrapper_versions.append(version)
    input_layer = _read_input(reader)
    layers: list[Layer] = []
    if version == _TAG_OR_SKIP_VERSION:
        layers.append(TagOrSkipLayer())
    elif version in _INPUT_ADD_LAYER_VERSIONS:
        layers.append(_read_layer_details(reader))
        _skip_layer_state(reader, extra_count=version >= 3)
    else:
        raise reader.fail(f"input wrapper version {version} is not one this reader knows")
    for version in reversed(wrapper_versions):
        if version == _TAG_OR_SKIP_VERSION:
            layers.append(TagOrSkipLayer())
        else:
            layers.append(_read_layer_details(reader))
            _skip_layer_state(reader, extra_count=False)
    if reader.remaining:
        raise reader.fail(f"{reader.remaining} bytes follow the end of the network")
    return DlibNetwork(loss=loss, input_layer=input_layer, layers=tuple(layers))


def _read_loss(reader: DlibByteReader) -> MetricLossLayer:
    name = reader.read_string("the loss layer name")
    if name == "loss_metric_":
        return MetricLossLayer(margin=None, distance_threshold=None)
    if name == "loss_metric_2":
        margin = reader.read_float("the loss margin")
        threshold = reader.read_float("the loss distance threshold")
        return MetricLossLayer(margin=margin, distance_threshold=threshold)
    raise reader.fail(f"loss layer '{name}' is not supported (only loss_metric_)")


def _read_input(reader: DlibByteReader) -> InputRgbLayer:
    name = reader.read_string("the input layer name")
    if name not in ("input_rgb_image", "input_rgb_image_sized"):
        raise reader.fail(f"input layer '{name}' is not supported (only input_rgb_image)")
    mean_rgb = (
        reader.read_float("the red mean"),
        reader.read_float("the green mean"),
        reader.read_float("the blue mean"),
    )
    if name == "input_rgb_image":
        return InputRgbLayer(mean_rgb=mean_rgb, rows=0, cols=0)
    rows = reader.read_int("the input rows")
    cols = reader.read_int("the input columns")
    return InputRgbLayer(mean_rgb=mean_rgb, rows=rows, cols=cols)


def _skip_layer_state(reader: DlibByteReader, extra_count: bool) -> None:
    # add_layer keeps three flags and three scratch tensors (gradients, cached output) after its
    # details; they are empty in a saved model but are read anyway to stay aligned. The
    # add_layer that wraps the input adds a sample expansion factor from version 3 on.
    for flag in ("setup flag", "stale-gradient flag", "disabled-output flag"):
        reader.read_bool(f"the {flag}")
    for scratch in ("gradient", "cached output", "parameter gradient"):
        reader.read_tensor(f"the {scratch} scratch tensor")
    if extra_count:
        reader.read_int("the sample expansion factor")


def _read_layer_details(reader: DlibByteReader) -> Layer:
    # Limitation: only the layer types of dlib's face descriptor are known (newer dlib writes
    # con_5, with a bias flag, and many other types) — each needs its own branch from dlib's
    # layers.h before another network can be read.
    name = reader.read_string("a layer name")
    if name == "con_4":
        return _read_conv(reader)
    if name == "affine_":
        return _read_affine(reader)
    if name == "relu_":
        return ReluLayer()
    if name in ("max_pool_2", "avg_pool_2"):
        return _read_pool(reader, is_max=name == "max_pool_2")
    if name == "add_prev_":
        return AddPrevLayer()
    if name == "fc_2":
        return _read_fc(reader)
    raise reader.fail(
        f"layer '{name}' is not supported (known: con_4, affine_, relu_, max_pool_2, "
        "avg_pool_2, add_prev_, fc_2)"
    )


def _read_conv(reader: DlibByteReader) -> ConvLayer:
    params = reader.read_tensor("the convolution parameters").reshape(-1)
    num_filters = reader.read_int("the number of filters")
    kernel = (reader.read_int("the kernel rows"), reader.read_int("the kernel columns"))
    stride = (reader.read_int("the row stride"), reader.read_int("the column stride"))
    padding = (reader.read_int("the row padding"), reader.read_int("the column padding"))
    filters_shape = reader.read_alias_shape("the filter view")
    biases_shape = reader.read_alias_shape("the bias view")
    for multiplier in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        reader.read_float(f"the {multiplier} multiplier")
    filter_count = math.prod(filters_shape)
    if filters_shape[0] != num_filters or params.size != filter_count + math.prod(biases_shape):
        raise reader.fail(
            f"convolution views {filters_shape} + {biases_shape} do not fit {num_filters} "
            f"filters in {params.size} parameters"
        )
    weights = params[:filter_count].reshape(filters_shape)
    return ConvLayer(
        kernel=kernel,
        stride=stride,
        padding=padding,
        weights=weights,
        biases=params[filter_count:].copy(),
    )


def _read_affine(reader: DlibByteReader) -> AffineLayer:
    params = reader.read_tensor("the affine parameters").reshape(-1)
    gamma_shape = reader.read_alias_shape("the gamma view")
    beta_shape = reader.read_alias_shape("the beta view")
    mode = reader.read_int("the affine mode")
    gamma_count = math.prod(gamma_shape)
    if params.size != gamma_count + math.prod(beta_shape):
        raise reader.fail(
            f"affine views {gamma_shape} + {beta_shape} do not fit {params.size} parameters"
        )
    return AffineLayer(
        mode=mode,
        gamma=params[:gamma_count].reshape(gamma_shape),
        beta=params[gamma_count:].reshape(beta_shape),
    )


def _read_pool(reader: DlibByteReader, is_max: bool) -> PoolLayer:
    window = (reader.read_int("the window rows"), reader.read_int("the window columns"))
    stride = (reader.read_int("the row stride"), reader.read_int("the column stride"))
    padding = (reader.read_int("the row padding"), reader.read_int("the column padding"))
    return PoolLayer(is_max=is_max, window=window, stride=stride, padding=padding)


def _read_fc(reader: DlibByteReader) -> FullyConnectedLayer:
    num_outputs = reader.read_int("the number of outputs")
    num_inputs = reader.read_int("the number of inputs")
    params = reader.read_tensor("the fully connected parameters").reshape(-1)
    weights_shape = reader.read_alias_shape("the weight view")
    biases_shape = reader.read_alias_shape("the bias view")
    reader.read_int("the bias mode")
    for multiplier in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        reader.read_float(f"the {multiplier} multiplier")
    weight_count = num_inputs * num_outputs
    bias_count = math.prod(biases_shape)
    if math.prod(weights_shape) != weight_count or params.size != weight_count + bias_count:
        raise reader.fail(
            f"fully connected views {weights_shape} + {biases_shape} do not fit "
            f"{num_inputs} inputs x {num_outputs} outputs in {params.size} parameters"
        )
    weights = params[:weight_count].reshape(num_inputs, num_outputs)
    biases = params[weight_count:].copy() if bias_count else None
    return FullyConnectedLayer(weights=weights, biases=biases)
