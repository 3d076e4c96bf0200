"""Tiny stand-ins for the face body, so model tests run without real weights."""

import numpy as np
import pytest
import torch
from torch import nn

from model.face_model import FaceModel
from model.gallery import Gallery
from model.thresholds import Thresholds

ROSTER = ["jin", "suga"]


class ColourBody(nn.Module):
    """Describe a crop by its mean red, green and blue: (N, 3, H, W) -> (N, 3)."""

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return crops.mean(dim=(2, 3))


def colour_face_model() -> FaceModel:
    """A face model that names red faces `jin` and green faces `suga`."""
    model = FaceModel(ColourBody(), descriptor_size=3, n_members=2)
    linear = model.head[-1]
    assert isinstance(linear, nn.Linear)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[10.0, -10.0, 0.0], [-10.0, 10.0, 0.0]]))
        linear.bias.zero_()
    model.eval()
    return model


@pytest.fixture
def face_model() -> FaceModel:
    return colour_face_model()


@pytest.fixture
def gallery() -> Gallery:
    descriptors = np.array([[1.0, -1.0, -0.8], [-1.0, 1.0, -0.8]], dtype=np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    return Gallery(descriptors, np.array([0, 1]), 2, np.zeros(3, dtype=np.float32))


@pytest.fixture
def thresholds() -> Thresholds:
    return Thresholds({"jin": 0.5, "suga": 0.5}, {"jin": 0.0, "suga": 0.0})
