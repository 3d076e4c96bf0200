"""Tests of the one-to-one matching of detected faces to labelled head boxes."""

from data_tools.matching import match_faces, score_pairs


def test_head_box_containing_a_smaller_face_box_is_matched() -> None:
    head = (100.0, 80.0, 200.0, 210.0)  # hair included
    face = (125.0, 130.0, 175.0, 195.0)  # IoU about 0.25, fully inside

    result = match_faces([head], [face])

    assert [(match.labelled_index, match.detection_index) for match in result.matches] == [(0, 0)]
    assert result.matches[0].iou < 0.3
    assert result.matches[0].containment == 1.0


def test_neighbouring_heads_each_get_their_own_face() -> None:
    heads = [(0.0, 0.0, 100.0, 120.0), (90.0, 0.0, 190.0, 120.0)]
    faces = [(105.0, 40.0, 170.0, 110.0), (15.0, 40.0, 80.0, 110.0)]

    result = match_faces(heads, faces)

    pairs = {(match.labelled_index, match.detection_index) for match in result.matches}
    assert pairs == {(0, 1), (1, 0)}
    assert result.missed_labelled == []
    assert result.unmatched_detections == []


def test_one_face_is_never_given_to_two_heads() -> None:
    heads = [(0.0, 0.0, 100.0, 100.0), (10.0, 0.0, 110.0, 100.0)]
    faces = [(30.0, 30.0, 80.0, 90.0)]

    result = match_faces(heads, faces)

    assert len(result.matches) == 1
    assert len(result.missed_labelled) == 1


def test_face_straddling_two_heads_goes_to_the_one_holding_more_of_it() -> None:
    heads = [(0.0, 0.0, 100.0, 100.0), (100.0, 0.0, 200.0, 100.0)]
    faces = [(60.0, 30.0, 120.0, 90.0)]  # two thirds in the first head

    result = match_faces(heads, faces)

    assert [(match.labelled_index, match.detection_index) for match in result.matches] == [(0, 0)]


def test_tiny_face_inside_a_head_box_is_not_its_face() -> None:
    head = (0.0, 0.0, 200.0, 200.0)
    poster_face = (90.0, 90.0, 110.0, 110.0)  # 1% of the head's area

    result = match_faces([head], [poster_face])

    assert result.matches == []
    assert result.missed_labelled == [0]
    assert result.unmatched_detections == [0]


def test_far_apart_boxes_are_left_unmatched() -> None:
    result = match_faces([(0.0, 0.0, 50.0, 50.0)], [(300.0, 300.0, 340.0, 350.0)])

    assert result.matches == []
    assert result.missed_labelled == [0]
    assert result.unmatched_detections == [0]


def test_no_boxes_on_either_side_match_nothing() -> None:
    no_detections = match_faces([(0.0, 0.0, 10.0, 10.0)], [])
    no_labels = match_faces([], [(0.0, 0.0, 10.0, 10.0)])

    assert no_detections.matches == [] and no_detections.missed_labelled == [0]
    assert no_labels.matches == [] and no_labels.unmatched_detections == [0]


def test_pair_score_is_iou_plus_containment() -> None:
    scores, ious, containments = score_pairs([(0.0, 0.0, 10.0, 10.0)], [(5.0, 0.0, 15.0, 10.0)])

    assert ious[0, 0] == 50 / 150
    assert containments[0, 0] == 0.5
    assert scores[0, 0] == ious[0, 0] + containments[0, 0]
