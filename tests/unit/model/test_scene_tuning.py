"""Tests of the image-cut tuning and of the side-by-side figures, on made-up answers."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from data_tools.errors import BundleLoadError
from model.assign import NOBODY
from model.evaluate_plots import write_plots
from model.evaluate_scene import (
    f1_by_threshold,
    face_figures,
    photo_groups,
    set_figures,
    variant_figures,
)
from model.scene_tuning import (
    NEVER,
    SceneAnswers,
    fused_answers,
    lifted_answers,
    tune_image_cuts,
    tune_lift,
)
from model.thresholds import LiftCuts

ROSTER = ["jin", "suga"]


def _answers(
    kinds: list[str],
    targets: list[list[bool]],
    face_named: list[list[bool]],
    scores: list[list[float]],
    results: list[object] | None = None,
    boxes: list[str] | None = None,
    face_probabilities: list[list[list[float]]] | None = None,
    face_assigned: list[list[int]] | None = None,
    detected: list[int] | None = None,
) -> SceneAnswers:
    rows = pd.DataFrame(
        {
            "kind": kinds,
            "degraded": [""] * len(kinds),
            "boxes": boxes or ["[]"] * len(kinds),
        }
    )
    return SceneAnswers(
        rows,
        results or [None] * len(kinds),  # type: ignore[arg-type]
        np.array(targets, dtype=bool),
        np.array(face_named, dtype=bool),
        np.array(scores, dtype=np.float32),
        np.array(detected or [0] * len(kinds), dtype=np.int64),
        np.array(
            [sum(index == NOBODY for index in faces) for faces in face_assigned or []]
            or [0] * len(kinds),
            dtype=np.int64,
        ),
        [
            np.array(faces, dtype=np.float32).reshape(-1, len(ROSTER))
            for faces in face_probabilities or [[]] * len(kinds)
        ],
        [np.array(faces, dtype=np.int64) for faces in face_assigned or [[]] * len(kinds)],
    )


def test_image_cut_adds_members_the_faces_missed_and_spares_the_others() -> None:
    answers = _answers(
        ["crop", "crop", "crop", "crop"],
        targets=[[True, False], [True, False], [False, True], [False, False]],
        face_named=[[False, False], [True, False], [False, True], [False, False]],
        scores=[[0.8, 0.1], [0.3, 0.2], [0.1, 0.9], [0.4, 0.1]],
    )

    cuts = tune_image_cuts(ROSTER, answers, stranger_budget=0.02)

    assert 0.4 < cuts["jin"] <= 0.8
    # The faces name suga wherever she is: the image adds nothing, so the strictest cut wins.
    assert cuts["suga"] == NEVER


def test_image_cut_never_names_a_member_in_stranger_photos_beyond_the_budget() -> None:
    answers = _answers(
        ["crop", "stranger", "stranger"],
        targets=[[True, False], [False, False], [False, False]],
        face_named=[[False, False], [False, False], [False, False]],
        scores=[[0.7, 0.0], [0.9, 0.0], [0.1, 0.0]],
    )

    cuts = tune_image_cuts(ROSTER, answers, stranger_budget=0.02)

    assert cuts["jin"] > 0.9


def test_set_figures_count_exact_sets_and_member_f1() -> None:
    predicted = np.array([[True, False], [True, True], [False, False]])
    targets = np.array([[True, False], [True, False], [False, True]])

    figures = set_figures(predicted, targets)

    assert figures["exact_set_rate"] == round(1 / 3, 4)
    assert figures["accuracy_multi"] == round(4 / 6, 4)
    assert figures["member_precision"] == round(2 / 3, 4)
    assert figures["member_recall"] == round(2 / 3, 4)


def _result(members: list[str | None], boxes: list[tuple[int, int, int, int]]) -> dict[str, object]:
    return {
        "faces": [
            {
                "box": {"x_min": b[0], "y_min": b[1], "x_max": b[2], "y_max": b[3]},
                "member": m,
                "candidates": [],
            }
            for m, b in zip(members, boxes, strict=True)
        ],
        "members": [],
        "image_scores": {},
    }


def test_confusion_matrix_has_nobody_and_missed() -> None:
    heads = json.dumps(
        [
            {"member": "jin", "x_min": 0, "y_min": 0, "x_max": 50, "y_max": 50},
            {"member": "suga", "x_min": 100, "y_min": 0, "x_max": 150, "y_max": 50},
            {"member": "jin", "x_min": 200, "y_min": 0, "x_max": 250, "y_max": 50},
        ]
    )
    answers = _answers(
        ["crop", "stranger"],
        targets=[[True, True], [False, False]],
        face_named=[[True, False], [False, False]],
        scores=[[0.0, 0.0], [0.0, 0.0]],
        results=[
            _result(["jin", None], [(5, 5, 45, 45), (105, 5, 145, 45)]),
            _result(["suga", None], [(0, 0, 40, 40), (50, 0, 90, 40)]),
        ],
        boxes=[heads, "[]"],
    )

    figures = face_figures(answers, ROSTER)

    counts = figures["confusion"]["counts"]
    assert figures["confusion"]["columns"] == ["jin", "suga", "nobody", "missed"]
    assert counts[0] == [1, 0, 0, 1]  # one jin named, one jin not found
    assert counts[1] == [0, 0, 1, 0]  # suga refused as nobody
    assert counts[2] == [0, 1, 1, 0]  # two stranger faces, one named suga
    assert figures["per_face_accuracy"] == round(1 / 3, 4)
    assert figures["share_stranger_faces_named"] == 0.5


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    answers = _answers(
        ["crop", "whole", "stranger"],
        targets=[[True, False], [True, True], [False, False]],
        face_named=[[True, False], [True, False], [False, False]],
        scores=[[0.9, 0.1], [0.8, 0.7], [0.1, 0.2]],
        results=[_result([], []), _result([], []), _result([], [])],
    )
    groups = photo_groups(answers)
    report = {
        "has_scene_model": True,
        "image_thresholds": {"jin": 0.5, "suga": 0.6},
        "variants": {
            name: variant_figures(answers.face_named, answers.targets, ROSTER, groups)
            for name in ("face_only", "scene_only", "fused")
        },
        "faces": face_figures(answers, ROSTER),
        "f1_by_threshold": f1_by_threshold(answers, ROSTER),
    }

    paths = write_plots(report, ROSTER, tmp_path / "plots")

    assert len(paths) == 4
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_retuning_a_scene_bundle_without_scene_photos_stops_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model import scene_tuning

    bundle = SimpleNamespace(scene_model=object())
    monkeypatch.setattr(scene_tuning, "load_bundle", lambda path: bundle)
    monkeypatch.setattr(scene_tuning, "tune_bundle_cuts", _fail)

    with pytest.raises(BundleLoadError, match="--scene-photos"):
        scene_tuning.retune_with_scene(tmp_path, tmp_path, None, stranger_cost=2.0)


def _fail(*args: object, **kwargs: object) -> None:
    raise AssertionError("face cuts were tuned before the arguments were checked")


def _lift_answers(stranger_probability: float) -> SceneAnswers:
    """Three photos with two faces each: jin named, the other face refused.

    In the crops the refused face is suga (probability 0.3), in the stranger photo a stranger
    whose best free member is suga at `stranger_probability`; the scene model backs suga in
    all three.
    """
    return _answers(
        ["crop", "crop", "stranger"],
        targets=[[True, True], [True, True], [False, False]],
        face_named=[[True, False], [True, False], [True, False]],
        scores=[[0.9, 0.4], [0.9, 0.4], [0.9, 0.4]],
        face_probabilities=[
            [[0.9, 0.1], [0.2, 0.3]],
            [[0.9, 0.1], [0.2, 0.3]],
            [[0.9, 0.1], [0.2, stranger_probability]],
        ],
        face_assigned=[[0, NOBODY], [0, NOBODY], [0, NOBODY]],
        detected=[2, 2, 2],
    )


def test_lift_names_the_refused_face_and_closes_the_photo_to_the_image() -> None:
    answers = _lift_answers(stranger_probability=0.05)
    cuts = np.array([0.5, 0.5], dtype=np.float32)

    lifted = lifted_answers(answers, ROSTER, cuts, LiftCuts(face=0.25, image_share=0.5))
    fused = fused_answers(answers, ROSTER, cuts, LiftCuts(face=0.25, image_share=0.5))

    assert lifted.face_named.tolist() == [[True, True], [True, True], [True, False]]
    assert lifted.unnamed_faces.tolist() == [0, 0, 1]
    assert lifted.face_assigned[0].tolist() == [0, 1]
    assert fused.tolist() == [[True, True], [True, True], [True, False]]
    # The answers given are left as they were.
    assert answers.face_named[:, 1].tolist() == [False, False, False]


def test_tuned_lift_raises_member_f1_without_naming_a_stranger() -> None:
    lift = tune_lift(ROSTER, _lift_answers(stranger_probability=0.2), {"jin": 0.5, "suga": 0.5})

    # Cuts at or under 0.2 would name the stranger too; 0.25 and 0.3 name the two suga faces.
    assert lift is not None
    # suga scores 0.4 in the image against a cut of 0.5: shares up to 0.8 back her.
    assert lift == LiftCuts(face=0.3, image_share=0.75)


def test_no_lift_when_every_lift_that_helps_also_names_a_stranger() -> None:
    lift = tune_lift(ROSTER, _lift_answers(stranger_probability=0.35), {"jin": 0.5, "suga": 0.5})

    assert lift is None
