"""Tests of the fusion rule: face members keep their boxes, the scene model adds the rest."""

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from model import fusion
from model.fusion import NEVER_IMAGE_CUT, fuse_members, fused_sets, is_addition_allowed
from model.results import MemberDict

BOX = {"x_min": 1, "y_min": 2, "x_max": 30, "y_max": 40}


def _face_member(name: str, score: float) -> MemberDict:
    return {"name": name, "score": score, "source": "face", "box": dict(BOX)}  # type: ignore[typeddict-item]


def _fuse(
    face_members: Sequence[MemberDict],
    scores: Mapping[str, float],
    cuts: Mapping[str, float],
    *,
    detected_faces: int = 0,
    unnamed_faces: int = 0,
) -> list[MemberDict]:
    return fuse_members(
        face_members, scores, cuts, detected_faces=detected_faces, unnamed_faces=unnamed_faces
    )


def test_members_named_from_faces_keep_their_boxes_and_come_first() -> None:
    members = _fuse(
        [_face_member("jin", 0.9)],
        {"jin": 0.1, "suga": 0.95},
        {"jin": 0.5, "suga": 0.5},
        detected_faces=2,
        unnamed_faces=1,
    )

    assert members[0] == _face_member("jin", 0.9)
    assert members[1] == {"name": "suga", "score": 0.95, "source": "image", "box": None}


def test_a_member_under_their_image_cut_is_not_added() -> None:
    members = _fuse([], {"jin": 0.69, "suga": 0.71}, {"jin": 0.7, "suga": 0.7})

    assert [member["name"] for member in members] == ["suga"]


def test_a_member_named_from_a_face_is_not_added_again_from_the_image() -> None:
    members = _fuse(
        [_face_member("jin", 0.6)], {"jin": 0.99}, {"jin": 0.5}, detected_faces=2, unnamed_faces=1
    )

    assert len(members) == 1
    assert members[0]["source"] == "face"


def test_no_image_cuts_or_a_never_cut_add_nobody() -> None:
    assert _fuse([], {"jin": 0.99}, {}) == []
    assert _fuse([], {"jin": 1.0}, {"jin": NEVER_IMAGE_CUT}) == []


def test_image_members_are_sorted_by_score() -> None:
    members = _fuse(
        [], {"jin": 0.8, "suga": 0.9, "v": 0.85}, dict.fromkeys(["jin", "suga", "v"], 0.5)
    )

    assert [member["name"] for member in members] == ["suga", "v", "jin"]


def test_with_the_gate_a_photo_whose_every_face_is_named_gets_no_image_member(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fusion, "GATE_IMAGE_ADDITIONS", True)
    scores, cuts = {"jin": 0.1, "suga": 0.95}, {"jin": 0.5, "suga": 0.5}

    closed = _fuse([_face_member("jin", 0.9)], scores, cuts, detected_faces=1, unnamed_faces=0)
    refused_face = _fuse(
        [_face_member("jin", 0.9)], scores, cuts, detected_faces=2, unnamed_faces=1
    )
    no_face = _fuse([], scores, cuts, detected_faces=0, unnamed_faces=0)

    assert [member["name"] for member in closed] == ["jin"]
    assert [member["name"] for member in refused_face] == ["jin", "suga"]
    assert [member["name"] for member in no_face] == ["suga"]


def test_without_the_gate_every_photo_is_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fusion, "GATE_IMAGE_ADDITIONS", False)

    is_open = is_addition_allowed(np.array([0, 3, 3]), np.array([0, 0, 1]))

    assert is_open.tolist() == [True, True, True]


def test_fused_sets_apply_the_same_rule_to_many_photos() -> None:
    face_named = np.array([[True, False], [False, False], [False, False]])
    scores = np.array([[0.1, 0.9], [0.6, 0.4], [1.0, 1.0]], dtype=np.float32)
    cuts = np.array([0.5, NEVER_IMAGE_CUT], dtype=np.float32)

    fused = fused_sets(face_named, scores, cuts)
    gated = fused_sets(face_named, scores, cuts, is_open=np.array([True, False, True]))

    assert fused.tolist() == [[True, False], [True, False], [True, False]]
    assert gated.tolist() == [[True, False], [False, False], [True, False]]
