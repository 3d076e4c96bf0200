"""Tests of the scene model: weight mapping, offline failure of resnet34, input preparation."""

import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from data_tools.errors import InvalidParameterError, WeightsFormatError
from model import scene
from model.scene import (
    EFFICIENTNET_LITE0,
    RESNET34,
    PretrainedWeightsUnavailableError,
    SceneModel,
    build_scene_model,
    load_efficientnet_lite0_weights,
    map_efficientnet_lite0_names,
    photos_to_tensor,
    score_photos,
)


def _tiny_body() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )


def _package_style(body: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """The body's tensors under other names, in the same order, as the package stores them."""
    return OrderedDict(
        (f"_layer{index}.{name.split('.')[-1]}", torch.full_like(tensor, float(index)))
        for index, (name, tensor) in enumerate(body.state_dict().items())
    )


def test_package_tensors_map_by_position_onto_every_timm_tensor() -> None:
    body = _tiny_body()
    weights = _package_style(body)

    load_efficientnet_lite0_weights(body, weights)

    for index, tensor in enumerate(body.state_dict().values()):
        assert torch.all(tensor == float(index))


def test_a_tensor_of_another_shape_is_refused_with_both_names() -> None:
    body = _tiny_body()
    weights = _package_style(body)
    first = next(iter(weights))
    weights[first] = torch.zeros(5, 3, 3, 3)

    with pytest.raises(WeightsFormatError, match=r"_layer0\.weight.*0\.weight"):
        map_efficientnet_lite0_names(weights, body.state_dict())


def test_too_few_tensors_are_refused() -> None:
    body = _tiny_body()
    weights = OrderedDict(list(_package_style(body).items())[:2])

    with pytest.raises(WeightsFormatError, match="not EfficientNet-Lite0"):
        load_efficientnet_lite0_weights(body, weights)


def test_resnet34_without_cached_weights_fails_at_once_and_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    started = time.perf_counter()

    with pytest.raises(PretrainedWeightsUnavailableError, match="cannot be downloaded"):
        build_scene_model(RESNET34, 7, pretrained=True, hub_dir=tmp_path)

    assert time.perf_counter() - started < 5.0


def test_resnet34_loads_weights_found_in_the_hub_cache(tmp_path: Path) -> None:
    import torchvision

    reference = torchvision.models.resnet34(weights=None)
    (tmp_path / "checkpoints").mkdir()
    torch.save(reference.state_dict(), tmp_path / "checkpoints" / scene.RESNET34_WEIGHTS_FILE)

    model = build_scene_model(RESNET34, 3, pretrained=True, hub_dir=tmp_path)

    assert torch.equal(model.body.conv1.weight, reference.conv1.weight)  # type: ignore[union-attr]


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="tf_efficientnet_lite0"):
        build_scene_model("vgg11", 7, pretrained=False)


def test_photos_are_squashed_whole_and_scaled_to_minus_one_one() -> None:
    white = np.full((50, 200, 3), 255, dtype=np.uint8)
    black = np.zeros((300, 100, 3), dtype=np.uint8)

    batch = photos_to_tensor([white, black], size_px=32, architecture=EFFICIENTNET_LITE0)

    assert batch.shape == (2, 3, 32, 32)
    assert torch.allclose(batch[0], torch.ones(3, 32, 32))
    assert torch.allclose(batch[1], -torch.ones(3, 32, 32))


def test_scene_model_gives_one_probability_per_member_per_photo() -> None:
    model = SceneModel(_tiny_body(), 4, n_members=7)
    photos = [np.zeros((40, 60, 3), np.uint8), np.full((80, 20, 3), 90, np.uint8)]

    probabilities = score_photos(model, photos, size_px=32, architecture=EFFICIENTNET_LITE0)

    assert probabilities.shape == (2, 7)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert model.training  # the model's mode is given back
