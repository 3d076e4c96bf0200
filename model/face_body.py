"""Port dlib's ResNet face descriptor to PyTorch: the face body, its input normalisation, loader.

The network is dlib's `dlib_face_recognition_resnet_model_v1.dat` (public domain): 29
convolutions on a 150x150 aligned RGB chip, ending in a 128-d descriptor. Weights are read
with the project's own reader (`model.dlib_format`), so dlib is not a runtime dependency.
"""

import importlib.util
import logging
from pathlib import Path
from typing import Final

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from numpy.typing import NDArray
from torch import Tensor, nn

from data_tools.errors import InvalidParameterError, WeightsFormatError
from model.dlib_format import (
    CONV_MODE,
    AffineLayer,
    ConvLayer,
    DlibNetwork,
    FullyConnectedLayer,
    read_dlib_network,
)

logger = logging.getLogger(__name__)

DESCRIPTOR_SIZE: Final = 128
CHIP_SIZE_PX: Final = 150
DLIB_MEAN_RGB: Final = (122.782, 117.001, 104.298)
"""Per-channel means that dlib's `input_rgb_image` subtracts from 0-255 pixels (R, G, B)."""
DLIB_SCALE: Final = 1.0 / 256.0
"""Factor dlib applies after subtracting the mean: `normalised = (pixel - mean) * DLIB_SCALE`."""
WEIGHTS_FILE_NAME: Final = "dlib_face_recognition_resnet_model_v1.dat"

# (output channels, whether the block halves the resolution), from the input side: dlib's
# alevel4 (3 blocks of 32), alevel3 (64), alevel2 (128), alevel1 (256), alevel0 (256).
_BLOCKS: Final = (
    *[(32, False)] * 3,
    (64, True),
    *[(64, False)] * 3,
    (128, True),
    *[(128, False)] * 2,
    (256, True),
    *[(256, False)] * 2,
    (256, True),
)
_STEM_CHANNELS: Final = 32
# The sequence of layer kinds the file must hold, in the reader's vocabulary.
_STEM_KINDS: Final = ("con", "affine", "relu", "pool")
_BLOCK_KINDS: Final = ("tag_or_skip", "con", "affine", "relu", "con", "affine")
_PLAIN_JOIN_KINDS: Final = ("add_prev", "relu")
_DOWN_JOIN_KINDS: Final = ("tag_or_skip", "tag_or_skip", "pool", "add_prev", "relu")
_HEAD_KINDS: Final = ("pool", "fc")


class DlibFaceBody(nn.Module):
    """dlib's face descriptor network as a trainable PyTorch module.

    Input is a float32 batch (N, 3, 150, 150) of aligned RGB chips already normalised the way
    dlib does it (`chips_to_tensor`); output is float32 (N, 128) descriptors, not L2-normalised
    (dlib's own rule: two faces are the same person when their distance is under 0.6).

    dlib's rules are kept: a strided convolution or pooling has no padding, and a residual sum
    of tensors whose shapes differ zero-pads the smaller one at the end of each axis (channels,
    rows, columns) before adding.
    """

    descriptor_size: int = DESCRIPTOR_SIZE

    def __init__(self) -> None:
        """Build the network with PyTorch's default initialisation; load weights separately."""
        super().__init__()
        self.stem = nn.Sequential(
            _dlib_conv(3, _STEM_CHANNELS, kernel_size=7, stride=2),
            DlibAffine(_STEM_CHANNELS),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        blocks: list[nn.Module] = []
        in_channels = _STEM_CHANNELS
        for out_channels, is_downsampling in _BLOCKS:
            blocks.append(DlibResidualBlock(in_channels, out_channels, is_downsampling))
            in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, DESCRIPTOR_SIZE, bias=False)

    def forward(self, chips: Tensor) -> Tensor:
        """Compute descriptors.

        Args:
            chips: float (N, 3, 150, 150), RGB, normalised as `chips_to_tensor` does.

        Returns:
            float (N, 128) descriptors.

        Raises:
            InvalidParameterError: the batch is not shaped (N, 3, 150, 150).
        """
        if chips.dim() != 4 or tuple(chips.shape[1:]) != (3, CHIP_SIZE_PX, CHIP_SIZE_PX):
            raise InvalidParameterError(
                f"the face body takes chips shaped (N, 3, {CHIP_SIZE_PX}, {CHIP_SIZE_PX}), "
                f"got {tuple(chips.shape)}; align faces to {CHIP_SIZE_PX}x{CHIP_SIZE_PX} first"
            )
        features = self.blocks(self.stem(chips))  # (N, 256, 2, 2)
        descriptors: Tensor = self.fc(self.pool(features).flatten(1))  # (N, 128)
        return descriptors

    def load_dlib_network(self, network: DlibNetwork) -> None:
        """Copy the weights of a parsed dlib network into this module.

        Raises:
            WeightsFormatError: the network is not dlib's ResNet face descriptor.
        """
        _check_layer_kinds(network)
        _check_input(network)
        convs = [module for module in self.modules() if isinstance(module, nn.Conv2d)]
        affines = [module for module in self.modules() if isinstance(module, DlibAffine)]
        conv_layers = [layer for layer in network.layers if isinstance(layer, ConvLayer)]
        affine_layers = [layer for layer in network.layers if isinstance(layer, AffineLayer)]
        fc_layer = next(layer for layer in network.layers if isinstance(layer, FullyConnectedLayer))
        with torch.no_grad():
            for index, (conv, conv_layer) in enumerate(zip(convs, conv_layers, strict=True)):
                _copy_conv(conv, conv_layer, index)
            for index, (affine, layer) in enumerate(zip(affines, affine_layers, strict=True)):
                _copy_affine(affine, layer, index)
            _copy_fc(self.fc, fc_layer)


class DlibAffine(nn.Module):
    """A learnable per-channel scale and shift: dlib's `affine` layer in its convolution mode.

    dlib trains with batch norm and saves it folded into this layer; fine-tuning keeps it as a
    plain scale and shift, which also makes the body behave the same in train and eval mode.
    """

    def __init__(self, channels: int) -> None:
        """Start as the identity: scale 1 and shift 0 on each of `channels` channels."""
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, features: Tensor) -> Tensor:
        """Return `features * scale + shift` per channel of a (N, C, H, W) tensor."""
        return features * self.scale.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)


class DlibResidualBlock(nn.Module):
    """Two 3x3 convolutions with affine layers, added to the input, then a ReLU.

    A downsampling block strides its first convolution by 2 (no padding, as dlib does) and
    averages the input over 2x2 windows for the shortcut; the two sides can then differ in
    channels and size, and are summed after zero-padding (`add_zero_padded`).
    """

    def __init__(self, in_channels: int, out_channels: int, is_downsampling: bool) -> None:
        """Build the block; the input must have `in_channels` channels."""
        super().__init__()
        stride = 2 if is_downsampling else 1
        self.conv1 = _dlib_conv(in_channels, out_channels, kernel_size=3, stride=stride)
        self.affine1 = DlibAffine(out_channels)
        self.conv2 = _dlib_conv(out_channels, out_channels, kernel_size=3, stride=1)
        self.affine2 = DlibAffine(out_channels)
        self.shortcut: nn.Module = (
            nn.AvgPool2d(kernel_size=2, stride=2) if is_downsampling else nn.Identity()
        )

    def forward(self, features: Tensor) -> Tensor:
        """Apply the block to a (N, C, H, W) tensor."""
        branch = F.relu(self.affine1(self.conv1(features)))
        branch = self.affine2(self.conv2(branch))
        return F.relu(add_zero_padded(branch, self.shortcut(features)))


def add_zero_padded(first: Tensor, second: Tensor) -> Tensor:
    """Add two (N, C, H, W) tensors the way dlib's `add_prev` does.

    The result takes the larger size on each axis; each input is aligned at index 0 of every
    axis and counts as zero where it has no value.
    """
    if first.shape == second.shape:
        return first + second
    channels, rows, cols = (
        max(a, b) for a, b in zip(first.shape[1:], second.shape[1:], strict=True)
    )
    return _pad_to(first, channels, rows, cols) + _pad_to(second, channels, rows, cols)


def chips_to_tensor(chips: NDArray[np.uint8]) -> Tensor:
    """Normalise aligned RGB chips as dlib does and lay them out for `DlibFaceBody`.

    Args:
        chips: uint8 (N, 150, 150, 3), RGB.

    Returns:
        float32 (N, 3, 150, 150): `(pixel - DLIB_MEAN_RGB) * DLIB_SCALE`.

    Raises:
        InvalidParameterError: the array is not uint8 (N, 150, 150, 3).
    """
    if (
        chips.dtype != np.uint8
        or chips.ndim != 4
        or chips.shape[1:] != (CHIP_SIZE_PX, CHIP_SIZE_PX, 3)
    ):
        raise InvalidParameterError(
            "chips must be uint8 RGB shaped (N, 150, 150, 3), got "
            f"{chips.dtype} {chips.shape}; align faces to 150x150 chips first"
        )
    pixels = torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(DLIB_MEAN_RGB, dtype=torch.float32).view(1, 3, 1, 1)
    return ((pixels - mean) * DLIB_SCALE).contiguous()


def default_weights_path() -> Path:
    """Locate dlib's face descriptor weights inside the `face-recognition-models` package.

    The package is found without importing it: its `__init__` needs `pkg_resources`, which
    recent setuptools no longer provides.

    Raises:
        WeightsFormatError: the package or the file inside it is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise WeightsFormatError(
            "dlib's face descriptor weights come from the face-recognition-models package, "
            "which is not installed; run `pip install face-recognition-models`"
        )
    path = Path(spec.origin).parent / "models" / WEIGHTS_FILE_NAME
    if not path.is_file():
        raise WeightsFormatError(
            f"face-recognition-models is installed but {path} is missing; reinstall it with "
            "`pip install --force-reinstall face-recognition-models`"
        )
    return path


def load_dlib_face_body(path: Path | None = None) -> DlibFaceBody:
    """Build a `DlibFaceBody` with dlib's pretrained weights.

    Args:
        path: a `dlib_face_recognition_resnet_model_v1.dat` file; None takes the one shipped
            in the `face-recognition-models` package.

    Raises:
        WeightsFormatError: the file is missing, damaged or holds another network.
    """
    weights_path = path if path is not None else default_weights_path()
    network = read_dlib_network(weights_path)
    body = DlibFaceBody()
    body.load_dlib_network(network)
    logger.info("dlib face body loaded", extra={"path": str(weights_path)})
    return body


def _dlib_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Conv2d:
    # dlib pads a convolution by half its kernel only when the stride is 1; strided ones get none.
    padding = kernel_size // 2 if stride == 1 else 0
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)


def _pad_to(features: Tensor, channels: int, rows: int, cols: int) -> Tensor:
    _, c, h, w = features.shape
    return F.pad(features, (0, cols - w, 0, rows - h, 0, channels - c))


def _expected_layer_kinds() -> list[str]:
    kinds = list(_STEM_KINDS)
    for _, is_downsampling in _BLOCKS:
        kinds += _BLOCK_KINDS
        kinds += _DOWN_JOIN_KINDS if is_downsampling else _PLAIN_JOIN_KINDS
    return kinds + list(_HEAD_KINDS)


def _check_layer_kinds(network: DlibNetwork) -> None:
    found = [layer.kind for layer in network.layers]
    expected = _expected_layer_kinds()
    if found == expected:
        return
    index = next(
        (
            i
            for i, (kind, wanted) in enumerate(zip(found, expected, strict=False))
            if kind != wanted
        ),
        min(len(found), len(expected)),
    )
    raise WeightsFormatError(
        f"the dlib network is not the ResNet face descriptor: layer {index} is "
        f"{found[index : index + 1]}, expected {expected[index : index + 1]} ({len(found)} "
        f"layers, expected {len(expected)}); pass {WEIGHTS_FILE_NAME}"
    )


def _check_input(network: DlibNetwork) -> None:
    input_layer = network.input_layer
    size = (input_layer.rows, input_layer.cols)
    if size != (CHIP_SIZE_PX, CHIP_SIZE_PX) or not np.allclose(
        input_layer.mean_rgb, DLIB_MEAN_RGB, atol=1e-3
    ):
        raise WeightsFormatError(
            f"the dlib network expects {size} chips with mean {input_layer.mean_rgb}, but the "
            f"face body normalises {CHIP_SIZE_PX}x{CHIP_SIZE_PX} chips with mean {DLIB_MEAN_RGB}"
        )


def _copy_conv(conv: nn.Conv2d, layer: ConvLayer, index: int) -> None:
    found = (tuple(layer.weights.shape), layer.stride, layer.padding)
    expected = (tuple(conv.weight.shape), conv.stride, conv.padding)
    if found != expected or conv.bias is None:
        raise WeightsFormatError(
            f"dlib convolution {index} has (shape, stride, padding) {found}, the face body "
            f"expects {expected}"
        )
    conv.weight.copy_(torch.from_numpy(layer.weights))
    conv.bias.copy_(torch.from_numpy(layer.biases))


def _copy_affine(affine: DlibAffine, layer: AffineLayer, index: int) -> None:
    channels = affine.scale.numel()
    if layer.mode != CONV_MODE or layer.gamma.size != channels or layer.beta.size != channels:
        raise WeightsFormatError(
            f"dlib affine layer {index} has mode {layer.mode} and {layer.gamma.size} channels, "
            f"the face body expects mode {CONV_MODE} and {channels}"
        )
    affine.scale.copy_(torch.from_numpy(layer.gamma.reshape(-1)))
    affine.shift.copy_(torch.from_numpy(layer.beta.reshape(-1)))


def _copy_fc(fc: nn.Linear, layer: FullyConnectedLayer) -> None:
    # dlib multiplies inputs @ weights (in, out); nn.Linear stores (out, in).
    if layer.weights.T.shape != tuple(fc.weight.shape) or layer.biases is not None:
        raise WeightsFormatError(
            f"dlib's last layer is {layer.weights.shape[0]} -> {layer.weights.shape[1]} "
            f"{'with' if layer.biases is not None else 'without'} bias, the face body expects "
            f"{fc.in_features} -> {fc.out_features} without bias"
        )
    fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.weights.T)))
