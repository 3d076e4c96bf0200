"""Tests of the fusion rule: face members keep their boxes, the scene model adds the rest."""

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from model import fusion
from model.assign import NOBODY
from model.fusion import (
    NEVER_IMAGE_CUT,
    fuse_members,
    fused_sets,
    is_addition_allowed,
    lift_faces,
    rounded_probabilities,
)
from model.results import MemberDict
from model.thresholds import LiftCuts

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


# Three members; face 0 is named member 0 on its own cuts, faces 1 and 2 are refused.
PROBABILITIES = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.1, 0.2, 0.25]], np.float32)
ASSIGNED = np.array([0, NOBODY, NOBODY])
CUTS = np.array([0.5, 0.5, 0.5], dtype=np.float32)
LIFT = LiftCuts(face=0.2, image_share=0.5)


def test_a_refused_face_takes_its_best_member_not_yet_named_when_the_image_backs_them() -> None:
    scores = np.array([0.9, 0.3, 0.3], dtype=np.float32)

    lifted = lift_faces(PROBABILITIES, ASSIGNED, scores, CUTS, LIFT)

    # Face 1's best is member 0, already named: it takes member 1 (0.3). Face 2 then takes
    # member 2 (0.25), its best free member.
    assert lifted.tolist() == [0, 1, 2]
    assert ASSIGNED.tolist() == [0, NOBODY, NOBODY]


def test_the_surer_refused_face_chooses_first() -> None:
    probabilities = np.array([[0.9, 0.0, 0.0], [0.0, 0.25, 0.0], [0.0, 0.35, 0.21]], np.float32)
    scores = np.array([0.9, 0.3, 0.3], dtype=np.float32)

    lifted = lift_faces(probabilities, ASSIGNED, scores, CUTS, LIFT)

    # Face 2 (0.35) takes member 1; face 1's next free member is under the face cut.
    assert lifted.tolist() == [0, NOBODY, 1]


def test_no_lift_under_the_face_cut_or_without_the_image_behind_it() -> None:
    weak_image = np.array([0.9, 0.2, 0.2], dtype=np.float32)
    never = np.array([0.5, NEVER_IMAGE_CUT, NEVER_IMAGE_CUT], dtype=np.float32)
    strong_image = np.array([0.9, 0.9, 0.9], dtype=np.float32)

    assert lift_faces(PROBABILITIES, ASSIGNED, weak_image, CUTS, LIFT).tolist() == [0, -1, -1]
    assert lift_faces(PROBABILITIES, ASSIGNED, strong_image, never, LIFT).tolist() == [0, -1, -1]
    strict = LiftCuts(face=0.4, image_share=0.0)
    assert lift_faces(PROBABILITIES, ASSIGNED, strong_image, CUTS, strict).tolist() == [0, -1, -1]
    assert lift_faces(PROBABILITIES, ASSIGNED, strong_image, CUTS, None).tolist() == [0, -1, -1]


def test_a_photo_with_no_face_named_on_its_own_cuts_is_not_lifted() -> None:
    alone = np.array([[0.1, 0.45, 0.1]], dtype=np.float32)
    scores = np.array([0.9, 0.9, 0.9], dtype=np.float32)

    lifted = lift_faces(alone, np.array([NOBODY]), scores, CUTS, LiftCuts(0.0, 0.0))

    assert lifted.tolist() == [NOBODY]


def test_faces_choose_by_their_best_member_still_free() -> None:
    # Face 1's best overall is member 0, already named; face 2 is surer of member 1.
    probabilities = np.array([[0.9, 0.0, 0.0], [0.8, 0.31, 0.0], [0.05, 0.7, 0.1]], np.float32)
    scores = np.array([0.9, 0.9, 0.9], dtype=np.float32)

    lifted = lift_faces(probabilities, ASSIGNED, scores, CUTS, LIFT)

    assert lifted.tolist() == [0, NOBODY, 1]


def test_rounded_probabilities_decide_as_the_answers_candidates_do() -> None:
    probabilities = np.array([[0.9, 0.0], [0.0, 0.29996]], dtype=np.float32)
    scores = np.array([0.9, 0.9], dtype=np.float32)
    cuts = np.array([0.5, 0.5], dtype=np.float32)
    at_cut = LiftCuts(face=0.3, image_share=0.5)
    assigned = np.array([0, NOBODY])

    rounded = rounded_probabilities(probabilities)

    assert rounded[1, 1] == np.float32(round(0.29996, 4))
    assert lift_faces(rounded, assigned, scores, cuts, at_cut).tolist() == [0, 1]
    assert lift_faces(probabilities, assigned, scores, cuts, at_cut).tolist() == [0, NOBODY]
