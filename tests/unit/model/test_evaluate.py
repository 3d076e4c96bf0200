from typing import Any

from model.evaluate import LabelledFace, format_report, score_photo, summarise_scores


def _face(box: tuple[int, int, int, int], member: str | None) -> dict[str, Any]:
    x_min, y_min, x_max, y_max = box
    return {
        "box": {"x_min": x_min, "y_min": y_min, "x_max": x_max, "y_max": y_max},
        "member": member,
    }


def _result(faces: list[dict[str, Any]]) -> Any:
    members = [{"name": face["member"]} for face in faces if face["member"]]
    return {"faces": faces, "members": members}


def test_missed_face_counts_as_wrong() -> None:
    labelled = [LabelledFace("jin", (0, 0, 100, 120)), LabelledFace("v", (200, 0, 300, 120))]
    result = _result([_face((10, 20, 90, 110), "jin")])

    score = score_photo(labelled, result)

    assert score.faces_named_right == 1
    assert score.labelled_faces == 2
    assert score.precision == 1.0
    assert score.recall == 0.5


def test_face_named_as_another_member_is_wrong_and_lowers_precision() -> None:
    labelled = [LabelledFace("jin", (0, 0, 100, 120))]
    result = _result([_face((10, 20, 90, 110), "v")])

    score = score_photo(labelled, result)

    assert score.faces_named_right == 0
    assert score.precision == 0.0
    assert score.f1 == 0.0


def test_summary_reports_accuracy_and_exact_sets() -> None:
    labelled = [LabelledFace("jin", (0, 0, 100, 120))]
    right = score_photo(labelled, _result([_face((10, 20, 90, 110), "jin")]))
    wrong = score_photo(labelled, _result([_face((10, 20, 90, 110), None)]))

    summary = summarise_scores([right, wrong])

    assert summary["per_face_accuracy"] == 0.5
    assert summary["exact_set_rate"] == 0.5
    assert summary["member_set"]["precision"] == 1.0
    assert summary["member_set"]["recall"] == 0.5


def test_report_shows_strangers_named_among_members() -> None:
    report = {
        "bundle": "b",
        "thresholds": "sha256:" + "0" * 64,
        "split": "valid",
        "group_photos": {"photos": 0},
        "strangers": {
            "split": "test",
            "photos": 3,
            "faces": 3,
            "faces_named": 0,
            "share_faces_named": 0.0,
            "among_members": {"trials": 3, "members_per_trial": "1-4", "share_named": 0.3333},
        },
    }

    text = format_report(report)

    assert "named among 1-4 members  0.3333 (3 chip trials)" in text
