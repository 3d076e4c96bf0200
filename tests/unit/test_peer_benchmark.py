"""The peer benchmark's k-NN decisions, on synthetic descriptors: no photo, no dlib."""

import numpy as np
import pytest

from .benchmark_scripts import load_benchmark

peer = load_benchmark("peer.py")


def _axis(index: int, length: float = 1.0) -> np.ndarray:
    vector = np.zeros(128)
    vector[index] = length
    return vector


@pytest.fixture
def known() -> "peer.KnownFaces":
    # Three faces of jin near axis 0, two of suga near axis 1, each from its own shot.
    encodings = np.stack(
        [_axis(0), _axis(0) + _axis(2, 0.1), _axis(0) + _axis(3, 0.1), _axis(1), _axis(1, 1.1)]
    )
    return peer.KnownFaces(
        encodings=encodings,
        members=["jin", "jin", "jin", "suga", "suga"],
        group_keys=["a", "b", "c", "d", "e"],
    )


def test_face_within_tolerance_is_named_by_its_neighbours(known: "peer.KnownFaces") -> None:
    face = (_axis(0) + _axis(4, 0.2))[None, :]

    [decision] = peer.decide_members(known, face, k=3, tolerance=0.6)

    assert decision.member == "jin"
    assert decision.nearest_distance == pytest.approx(0.2)
    assert decision.vote_shares == {"jin": pytest.approx(1.0)}


def test_face_beyond_tolerance_is_nobody(known: "peer.KnownFaces") -> None:
    face = _axis(5)[None, :]

    [decision] = peer.decide_members(known, face, k=3, tolerance=0.6)

    assert decision.member is None
    assert decision.nearest_distance == pytest.approx(np.sqrt(2.0))


def test_vote_weighs_nearer_faces_more(known: "peer.KnownFaces") -> None:
    # Nearer to suga's two faces than to jin's three: the 1/distance weights let suga win.
    face = (0.3 * _axis(0) + 0.9 * _axis(1))[None, :]

    [decision] = peer.decide_members(known, face, k=5, tolerance=1.0)

    assert decision.member == "suga"
    assert decision.vote_shares["suga"] > decision.vote_shares["jin"]


def test_no_faces_gives_no_decisions(known: "peer.KnownFaces") -> None:
    assert peer.decide_members(known, np.zeros((0, 128)), k=3, tolerance=0.6) == []


def test_tuning_refuses_strangers_when_they_sit_between_members(
    known: "peer.KnownFaces",
) -> None:
    # A stranger 0.5 from jin's faces: a tolerance of 0.5 or more would name it.
    strangers = (_axis(0) + _axis(6, 0.5))[None, :]

    tuning = peer.choose_k_and_tolerance(known, strangers)

    assert tuning.member_accuracy == 1.0
    assert tuning.stranger_refusal == 1.0
    assert tuning.tolerance < 0.5


def test_tuning_leaves_out_the_whole_shot() -> None:
    # Both faces of jin come from one shot: left out together, neither can be named.
    known = peer.KnownFaces(
        encodings=np.stack([_axis(0), _axis(0), _axis(1)]),
        members=["jin", "jin", "suga"],
        group_keys=["a", "a", "b"],
    )

    tuning = peer.choose_k_and_tolerance(known, np.zeros((0, 128)))

    assert tuning.member_accuracy == 0.0
    assert tuning.stranger_refusal is None
