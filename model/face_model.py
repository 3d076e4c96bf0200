"""The face model: dlib's face-descriptor network as its body and a multilabel head on top."""

import logging

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from model.face_body import DlibFaceBody, load_dlib_face_body

logger = logging.getLogger(__name__)

FACE_ARCHITECTURE = "dlib-resnet29/bn-dropout-linear"
HEAD_DROPOUT = 0.2
_LOGIT_EPSILON = 1e-6


class FaceModel(nn.Module):
    """Map normalised face crops to one logit per member, and to a face descriptor.

    The body maps (N, 3, 150, 150) crops, normalised as dlib does, to (N, D) descriptors;
    the head maps descriptors to (N, n_members) logits.
    """

    def __init__(self, body: nn.Module, descriptor_size: int, n_members: int) -> None:
        """Put a fresh head of `n_members` outputs on `body`."""
        super().__init__()
        self.body = body
        self.head = nn.Sequential(
            nn.BatchNorm1d(descriptor_size),
            nn.Dropout(HEAD_DROPOUT),
            nn.Linear(descriptor_size, n_members),
        )

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """Return (N, n_members) logits for (N, 3, H, W) normalised crops."""
        logits: torch.Tensor = self.head(self.body(crops))
        return logits

    @property
    def n_members(self) -> int:
        """Return the number of members the head scores."""
        linear = self.head[-1]
        assert isinstance(linear, nn.Linear)
        return linear.out_features

    @property
    def descriptor_size(self) -> int:
        """Return the width D of the descriptors `describe` gives."""
        linear = self.head[-1]
        assert isinstance(linear, nn.Linear)
        return linear.in_features

    def describe(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (N, D) descriptors (the body's output) and (N, n_members) logits in one pass."""
        descriptors = self.body(crops)
        return descriptors, self.head(descriptors)


class FaceEnsemble(nn.Module):
    """Face models of one roster trained with different seeds, answering as one face model.

    Each model alone lands a few points above or below the others on the same photos, mostly
    in which small faces and which look-alike strangers it gets right; their mean is steadier
    than any one of them. Descriptors are the models' descriptors side by side, (N, k * D), so
    the gallery compares them all at once; logits are those of the models' mean probability.
    """

    def __init__(self, models: list[FaceModel]) -> None:
        """Join `models`; they must score the same roster with descriptors of one width."""
        super().__init__()
        if not models or len({(m.n_members, m.descriptor_size) for m in models}) != 1:
            raise ValueError("an ensemble needs one or more face models of one shape")
        self.models = nn.ModuleList(models)

    @property
    def n_members(self) -> int:
        """Return the number of members every model scores."""
        return self._first.n_members

    @property
    def descriptor_size(self) -> int:
        """Return the width of the joined descriptors: k * D."""
        return self._first.descriptor_size * len(self.models)

    @property
    def _first(self) -> FaceModel:
        return self._face_models[0]

    @property
    def _face_models(self) -> list[FaceModel]:
        return [model for model in self.models if isinstance(model, FaceModel)]

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """Return (N, n_members) logits of the models' mean probabilities."""
        return self.describe(crops)[1]

    def describe(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (N, k * D) joined descriptors and (N, n_members) logits of mean probabilities."""
        answers = [model.describe(crops) for model in self._face_models]
        descriptors = torch.cat([descriptor for descriptor, _ in answers], dim=1)
        probabilities = torch.stack([torch.sigmoid(logits) for _, logits in answers]).mean(dim=0)
        return descriptors, torch.logit(probabilities, eps=_LOGIT_EPSILON)


# A face model alone or several joined; both describe crops the same way.
FaceScorer = FaceModel | FaceEnsemble


def build_face_body(*, pretrained: bool) -> DlibFaceBody:
    """Return dlib's face body, with its pretrained weights or (to load a bundle into) without."""
    return load_dlib_face_body() if pretrained else DlibFaceBody()


def body_and_head_parameters(model: nn.Module) -> list[list[nn.Parameter]]:
    """Split a `FaceModel` into two parameter groups, body first, for discriminative rates."""
    if not isinstance(model, FaceModel):
        raise TypeError(f"expected a FaceModel, got {type(model).__name__}")
    return [list(model.body.parameters()), list(model.head.parameters())]


@torch.inference_mode()
def describe_crops(
    model: FaceScorer, crops: torch.Tensor, *, batch_size: int = 64, is_flip_averaged: bool = True
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Score normalised crops in batches with the model in eval mode.

    Args:
        model: the face model, alone or an ensemble.
        crops: (N, 3, H, W) float crops, normalised as the body expects.
        batch_size: crops per forward pass.
        is_flip_averaged: also score each crop mirrored left to right and average the two.

    Returns:
        (N, D) descriptors and (N, n_members) probabilities, both float32.
    """
    was_training = model.training
    model.eval()
    descriptor_batches: list[torch.Tensor] = []
    probability_batches: list[torch.Tensor] = []
    for start in range(0, crops.shape[0], batch_size):
        batch = crops[start : start + batch_size]
        descriptors, logits = model.describe(batch)
        probabilities = torch.sigmoid(logits)
        if is_flip_averaged:
            # A face and its mirror image are the same person; averaging the two answers
            # steadies the scores of faces seen at an angle.
            flipped_descriptors, flipped_logits = model.describe(torch.flip(batch, dims=[3]))
            descriptors = (descriptors + flipped_descriptors) / 2
            probabilities = (probabilities + torch.sigmoid(flipped_logits)) / 2
        descriptor_batches.append(descriptors)
        probability_batches.append(probabilities)
    model.train(was_training)
    if not descriptor_batches:
        empty_descriptors = np.zeros((0, model.descriptor_size), np.float32)
        return empty_descriptors, np.zeros((0, model.n_members), np.float32)
    return (
        torch.cat(descriptor_batches).numpy().astype(np.float32),
        torch.cat(probability_batches).numpy().astype(np.float32),
    )
