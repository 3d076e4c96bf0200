import json
from pathlib import Path

import numpy as np
import pytest

from data_tools.errors import BundleLoadError, InvalidParameterError, UnknownMemberError
from model.thresholds import (
    ContextCuts,
    LiftCuts,
    Thresholds,
    default_thresholds,
    load_thresholds,
    save_thresholds,
    tune_thresholds,
)

ROSTER = ["jin", "suga"]


def test_saved_thresholds_load_back_equal(tmp_path: Path) -> None:
    thresholds = Thresholds({"jin": 0.4, "suga": 0.7}, {"jin": 0.2, "suga": -0.1})

    save_thresholds(tmp_path, thresholds)
    loaded = load_thresholds(tmp_path, ROSTER)

    assert loaded.face == thresholds.face
    assert loaded.gallery == thresholds.gallery
    assert loaded.digest() == thresholds.digest()


def test_digest_changes_when_a_cut_changes() -> None:
    thresholds = default_thresholds(ROSTER)

    changed = thresholds.with_member("suga", face=0.9)

    assert changed.digest() != thresholds.digest()
    assert changed.face["suga"] == 0.9
    assert thresholds.face["suga"] == 0.5


def test_setting_unknown_member_is_refused() -> None:
    with pytest.raises(UnknownMemberError, match="jhope"):
        default_thresholds(ROSTER).with_member("jhope", face=0.5)


def test_setting_cut_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidParameterError):
        default_thresholds(ROSTER).with_member("jin", face=1.5)


def test_missing_member_in_file_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "thresholds.json").write_text(json.dumps({"face": {"jin": 0.5}, "gallery": {}}))

    with pytest.raises(BundleLoadError, match="suga"):
        load_thresholds(tmp_path, ROSTER)


def test_half_written_file_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "thresholds.json").write_text('{"face": {"jin": 0.5, "su')

    with pytest.raises(BundleLoadError, match="not readable JSON"):
        load_thresholds(tmp_path, ROSTER)


def test_tuning_separates_members_from_strangers() -> None:
    # jin's faces score 0.8 to 0.95; strangers that look most like jin score up to 0.6.
    probabilities = np.array(
        [[0.95, 0.0], [0.9, 0.1], [0.8, 0.1], [0.6, 0.2], [0.55, 0.1], [0.1, 0.9], [0.2, 0.85]],
        dtype=np.float32,
    )
    similarities = np.full_like(probabilities, 0.5)
    is_member_face = np.array([True, True, True, False, False, True, True])

    thresholds = tune_thresholds(
        ROSTER, probabilities, similarities, is_member_face, stranger_cost=4.0
    )
    known = thresholds.is_known(ROSTER, probabilities, similarities)

    assert known.tolist() == [True, True, True, False, False, True, True]


def test_member_face_with_a_wrong_first_guess_still_counts_as_known() -> None:
    # The second face is suga's, though the model's first guess is jin: it is still a member.
    probabilities = np.array([[0.9, 0.1], [0.7, 0.6], [0.3, 0.1]], dtype=np.float32)
    similarities = np.full_like(probabilities, 0.5)
    is_member_face = np.array([True, True, False])

    thresholds = tune_thresholds(
        ROSTER, probabilities, similarities, is_member_face, stranger_cost=4.0
    )

    assert thresholds.is_known(ROSTER, probabilities, similarities).tolist() == [True, True, False]


def test_tuning_uses_gallery_similarity_when_probability_cannot_separate() -> None:
    # A stranger with jin's probability but far from jin's known faces.
    probabilities = np.array([[0.9, 0.0], [0.9, 0.0], [0.9, 0.0]], dtype=np.float32)
    similarities = np.array([[0.8, 0.0], [0.7, 0.0], [0.1, 0.0]], dtype=np.float32)
    is_member_face = np.array([True, True, False])

    thresholds = tune_thresholds(
        ROSTER, probabilities, similarities, is_member_face, stranger_cost=4.0
    )

    assert thresholds.is_known(ROSTER, probabilities, similarities).tolist() == [True, True, False]
    assert thresholds.tuned_on["stranger_faces"] == 1


def test_context_cuts_load_back_equal_and_change_the_digest(tmp_path: Path) -> None:
    plain = default_thresholds(ROSTER)
    with_context = Thresholds(plain.face, plain.gallery, context=ContextCuts(3, 0.2, 0.55))

    save_thresholds(tmp_path, with_context)
    loaded = load_thresholds(tmp_path, ROSTER)

    assert loaded.context == ContextCuts(3, 0.2, 0.55)
    assert loaded.digest() == with_context.digest() != plain.digest()
    assert loaded.with_member("jin", face=0.6).context == loaded.context


def test_thresholds_file_without_context_loads_with_none(tmp_path: Path) -> None:
    (tmp_path / "thresholds.json").write_text(
        json.dumps({"face": {"jin": 0.5, "suga": 0.5}, "gallery": {"jin": 0.0, "suga": 0.0}})
    )

    assert load_thresholds(tmp_path, ROSTER).context is None


@pytest.mark.parametrize(
    "context",
    [
        {"min_named": 0, "face": 0.2, "gallery": 0.5},
        {"min_named": True, "face": 0.2, "gallery": 0.5},
        {"min_named": 2, "face": 1.2, "gallery": 0.5},
        {"min_named": 2, "face": 0.2},
        [2, 0.2, 0.5],
    ],
)
def test_bad_context_cuts_are_a_load_error(tmp_path: Path, context: object) -> None:
    raw = {"face": {"jin": 0.5, "suga": 0.5}, "gallery": {"jin": 0.0, "suga": 0.0}}
    (tmp_path / "thresholds.json").write_text(json.dumps({**raw, "context": context}))

    with pytest.raises(BundleLoadError, match="context"):
        load_thresholds(tmp_path, ROSTER)


def test_a_member_cut_rises_above_the_shared_cut_only_where_strangers_are_removed() -> None:
    # Pooled, a cut just above the stranger at 0.5 is best. Among jin's faces a stranger sits
    # at 0.8, under jin's own faces (0.9, 0.95): jin's cut rises above it. suga's faces
    # (0.6 to 0.7) have no stranger left near them and keep the shared cut.
    probabilities = np.array(
        [
            [0.95, 0.0],
            [0.9, 0.1],
            [0.8, 0.1],
            [0.1, 0.7],
            [0.1, 0.65],
            [0.1, 0.6],
            [0.0, 0.5],
        ],
        dtype=np.float32,
    )
    similarities = np.full_like(probabilities, 0.5)
    is_member_face = np.array([True, True, False, True, True, True, False])

    thresholds = tune_thresholds(
        ROSTER, probabilities, similarities, is_member_face, stranger_cost=2.0
    )

    shared_face = thresholds.tuned_on["shared"]["face"]
    assert 0.5 < shared_face <= 0.6
    assert thresholds.face["suga"] == shared_face
    assert 0.8 < thresholds.face["jin"] <= 0.9
    known = thresholds.is_known(ROSTER, probabilities, similarities)
    assert known.tolist() == [True, True, False, True, True, True, False]
    assert thresholds.context is None


def test_lift_cuts_load_back_equal_and_change_the_digest(tmp_path: Path) -> None:
    plain = Thresholds(
        {"jin": 0.4, "suga": 0.7}, {"jin": 0.2, "suga": -0.1}, {"jin": 0.5, "suga": 1.0}
    )
    lifted = Thresholds(plain.face, plain.gallery, plain.image, lift=LiftCuts(0.25, 0.5))

    save_thresholds(tmp_path, lifted)
    loaded = load_thresholds(tmp_path, ROSTER)

    assert loaded.lift == LiftCuts(0.25, 0.5)
    assert loaded.digest() == lifted.digest() != plain.digest()
    # Editing other cuts keeps the lift cuts.
    assert loaded.with_member("jin", face=0.5).lift == loaded.lift
    assert loaded.with_context(None).lift == loaded.lift


@pytest.mark.parametrize(
    "lift",
    ["yes", {"face": 0.2}, {"face": 1.5, "image_share": 0.5}, {"face": 0.2, "image_share": True}],
)
def test_bad_lift_cuts_are_a_load_error(tmp_path: Path, lift: object) -> None:
    save_thresholds(tmp_path, Thresholds({"jin": 0.4, "suga": 0.7}, {"jin": 0.2, "suga": -0.1}))
    raw = json.loads((tmp_path / "thresholds.json").read_text())
    raw["lift"] = lift
    (tmp_path / "thresholds.json").write_text(json.dumps(raw))

    with pytest.raises(BundleLoadError, match="lift"):
        load_thresholds(tmp_path, ROSTER)
