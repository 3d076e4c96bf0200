import pytest
import torch

from model.face_model import FaceEnsemble, FaceModel, describe_crops

from .conftest import ColourBody, colour_face_model


def test_ensemble_averages_probabilities_and_joins_descriptors() -> None:
    first = colour_face_model()
    second = colour_face_model()
    with torch.no_grad():
        second.head[-1].bias.fill_(2.0)  # type: ignore[operator]
    ensemble = FaceEnsemble([first, second])
    crops = torch.rand(4, 3, 8, 8)

    descriptors, probabilities = describe_crops(ensemble, crops, is_flip_averaged=False)
    _, first_probabilities = describe_crops(first, crops, is_flip_averaged=False)
    _, second_probabilities = describe_crops(second, crops, is_flip_averaged=False)

    assert descriptors.shape == (4, 6)
    assert probabilities == pytest.approx(
        (first_probabilities + second_probabilities) / 2, abs=1e-5
    )


def test_ensemble_with_no_crops_answers_with_empty_arrays_of_its_widths() -> None:
    ensemble = FaceEnsemble([colour_face_model(), colour_face_model()])

    descriptors, probabilities = describe_crops(ensemble, torch.zeros(0, 3, 8, 8))

    assert descriptors.shape == (0, 6)
    assert probabilities.shape == (0, 2)


def test_ensemble_refuses_models_of_different_rosters() -> None:
    with pytest.raises(ValueError, match="one shape"):
        FaceEnsemble([colour_face_model(), FaceModel(ColourBody(), 3, n_members=3)])
