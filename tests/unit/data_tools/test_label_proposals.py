"""Tests of face proposals on collected photos, the labelled set and review decisions.

A fake detector and describer stand in for MTCNN and the dlib face body: each photo's faces
and descriptors are set by the test.
"""

import csv
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from data_tools.errors import InvalidParameterError
from data_tools.faces import Face
from data_tools.label_proposals import (
    FLAG_FAR_FROM_MEMBER,
    FLAG_FEW_FACES,
    FLAG_LOW_DETECTION_SCORE,
    FLAG_NEARER_OTHER_MEMBER,
    FLAG_SEVERAL_FACES,
    FLAG_TINY_FACE,
    PhotoFaces,
    ProposalOptions,
    propose_labels,
    unit_rows,
)
from data_tools.labelled_set import (
    CONFIRMED,
    DELETED,
    LABELLED_DIR,
    NOT_A_MEMBER,
    RELABELLED,
    LabelledSet,
    training_labels,
)
from data_tools.labelling import LabelOptions, label_collection
from data_tools.prepare import FACE_COLUMNS
from data_tools.roster import parse_roster

DIMENSIONS = 8
CENTRES = {"ana": 0, "bo": 1, "cy": 2}
ROSTER = parse_roster(
    {
        "group": "G",
        "members": [{"slug": slug, "display_name": slug.title()} for slug in CENTRES],
    }
)


def _descriptor(member: str, seed: int, noise: float = 0.05) -> NDArray[np.float32]:
    """A descriptor near the member's own axis; distinct seeds give distinct noise."""
    vector = np.random.default_rng(seed).normal(0, noise, DIMENSIONS)
    vector[CENTRES[member]] += 1.0
    return vector.astype(np.float32)


def _face(x_min: float = 10, size: float = 80, score: float = 0.999) -> Face:
    landmarks = np.array(
        [
            [x_min + size * fx, 10 + size * fy]
            for fx, fy in [(0.3, 0.35), (0.7, 0.35), (0.5, 0.55), (0.35, 0.75), (0.65, 0.75)]
        ],
        dtype=np.float32,
    )
    return Face(
        box=(x_min, 10, x_min + size, 10 + size), landmarks=landmarks, detection_score=score
    )


def _photo(
    name: str, member: str, descriptors: list[NDArray[np.float32]], faces: list[Face] | None = None
) -> PhotoFaces:
    faces = faces or [_face(10 + 100 * index) for index in range(len(descriptors))]
    return PhotoFaces(name, member, faces, unit_rows(np.stack(descriptors)))


def _cluster(member: str, count: int, start: int = 0) -> list[PhotoFaces]:
    return [
        _photo(f"{member}{seed}", member, [_descriptor(member, seed)])
        for seed in range(start, start + count)
    ]


def _verdicts_of(
    photos: list[PhotoFaces], photo: str, options: ProposalOptions | None = None
) -> list:
    verdicts = propose_labels(photos, options or ProposalOptions())
    return [verdict for verdict in verdicts if verdict.photo == photo]


def test_sole_face_of_a_member_photo_gets_that_member_without_flags() -> None:
    photos = _cluster("ana", 6) + _cluster("bo", 6)

    (verdict,) = _verdicts_of(photos, "ana3")

    assert verdict.member == "ana"
    assert verdict.flags == []
    assert verdict.similarity is not None and verdict.similarity > 0.9


def test_photo_of_several_faces_proposes_the_face_nearest_the_member_and_flags_it() -> None:
    stranger = np.ones(DIMENSIONS, dtype=np.float32)
    group = _photo("group", "ana", [_descriptor("bo", 99), stranger, _descriptor("ana", 98)])
    photos = _cluster("ana", 6) + _cluster("bo", 6) + [group]

    verdicts = _verdicts_of(photos, "group")

    assert [verdict.member for verdict in verdicts] == ["", "", "ana"]
    assert verdicts[2].flags == [FLAG_SEVERAL_FACES]


def test_without_a_cluster_the_largest_face_of_several_is_proposed() -> None:
    faces = [_face(10, 40), _face(100, 120), _face(300, 60)]
    group = _photo("group", "cy", [_descriptor("cy", seed) for seed in range(3)], faces)

    verdicts = _verdicts_of([group], "group")

    assert [verdict.member for verdict in verdicts] == ["", "cy", ""]
    assert verdicts[1].flags == [FLAG_SEVERAL_FACES, FLAG_FEW_FACES]


def test_face_of_another_member_is_flagged_with_the_nearer_member() -> None:
    wrong = _photo("wrong", "ana", [_descriptor("bo", 77)])
    photos = _cluster("ana", 8) + _cluster("bo", 8) + [wrong]

    (verdict,) = _verdicts_of(photos, "wrong")

    assert verdict.member == "ana"
    assert FLAG_NEARER_OTHER_MEMBER in verdict.flags
    assert FLAG_FAR_FROM_MEMBER in verdict.flags
    assert verdict.nearest_other == "bo"


def test_face_far_from_every_cluster_is_flagged_far_from_member() -> None:
    odd = np.zeros(DIMENSIONS, dtype=np.float32)
    odd[CENTRES["ana"]], odd[7] = 0.6, 0.8
    photos = [*_cluster("ana", 10), _photo("edited", "ana", [odd])]

    (verdict,) = _verdicts_of(photos, "edited")

    assert verdict.flags == [FLAG_FAR_FROM_MEMBER]


def test_low_detection_score_and_tiny_faces_are_flagged() -> None:
    faces = [_face(10, 20, score=0.8)]
    photos = [*_cluster("ana", 6), _photo("blurry", "ana", [_descriptor("ana", 50)], faces)]

    (verdict,) = _verdicts_of(photos, "blurry", ProposalOptions(min_face_px=30))

    assert verdict.member == "ana"
    assert verdict.flags == [FLAG_LOW_DETECTION_SCORE, FLAG_TINY_FACE]


def test_member_with_too_few_faces_is_flagged_not_compared() -> None:
    photos = _cluster("ana", 3)

    verdicts = propose_labels(photos, ProposalOptions(min_cluster_faces=3))

    assert all(verdict.flags == [FLAG_FEW_FACES] for verdict in verdicts)
    assert all(verdict.similarity is None for verdict in verdicts)


class FakeFaces:
    """Detector and describer in one: the photo's red value at (0, 0) picks its faces."""

    def __init__(self, plan: dict[int, list[tuple[Face, NDArray[np.float32]]]]) -> None:
        self.plan = plan
        self.detected = 0
        self._pending: list[NDArray[np.float32]] = []

    def detect(self, photo: NDArray[np.uint8]) -> list[Face]:
        self.detected += 1
        faces = self.plan[int(photo[0, 0, 0])]
        self._pending = [descriptor for _, descriptor in faces]
        return [face for face, _ in faces]

    def describe(self, chips: NDArray[np.uint8]) -> NDArray[np.float32]:
        assert chips.shape[1:] == (150, 150, 3)
        return np.stack(self._pending)


def _collection(tmp_path: Path) -> tuple[Path, FakeFaces]:
    """Five photos per member (one face each), one photo of ana with two faces, one empty."""
    plan: dict[int, list[tuple[Face, NDArray[np.float32]]]] = {}
    key = 0
    for member in ("ana", "bo"):
        folder = tmp_path / "photos" / member
        folder.mkdir(parents=True)
        names = [f"{member}{index}.png" for index in range(5)] + (
            [f"{member}-group.png", f"{member}-none.png"] if member == "ana" else []
        )
        for name in names:
            key += 1
            if name.endswith("group.png"):
                plan[key] = [
                    (_face(10), _descriptor("bo", key)),
                    (_face(150), _descriptor("ana", key)),
                ]
            elif name.endswith("none.png"):
                plan[key] = []
            else:
                plan[key] = [(_face(10), _descriptor(member, key))]
            pixels = np.random.default_rng(key).integers(0, 256, (12, 16, 3), dtype=np.uint8)
            pixels[0, 0, 0] = key
            Image.fromarray(pixels).resize((320, 240), Image.Resampling.NEAREST).save(folder / name)
            # Resizing blurs nothing at (0, 0) with NEAREST, so the key survives.
    return tmp_path, FakeFaces(plan)


def _manifest(collection: Path) -> dict[str, str]:
    with (collection / LABELLED_DIR / "faces.csv").open(encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames or ()) == FACE_COLUMNS
        return {Path(row["chip"]).stem: row["labels"] for row in reader}


def _options() -> LabelOptions:
    return LabelOptions(proposals=ProposalOptions(min_face_px=20))


def test_label_collection_writes_a_manifest_of_the_faces_that_can_train(tmp_path: Path) -> None:
    collection, fake = _collection(tmp_path)

    labelled = label_collection(collection, ROSTER, fake, fake, _options())

    by_photo = {
        face["photo"].rsplit("/", 1)[1]: face for face in labelled.faces if face["proposed"]
    }
    group = by_photo["ana-group.png"]
    assert group["face_index"] == 1 and group["flags"] == ["several-faces"]
    manifest = _manifest(collection)
    assert len(manifest) == 10  # the ten sole faces; the group's faces wait for review
    assert sorted(set(manifest.values())) == ["ana", "bo"]
    assert all((collection / LABELLED_DIR / face["chip"]).is_file() for face in labelled.faces)
    assert {face["split"] for face in labelled.faces} <= {"train", "valid"}


def test_review_decisions_rewrite_the_training_manifest(tmp_path: Path) -> None:
    collection, fake = _collection(tmp_path)
    labelled = label_collection(collection, ROSTER, fake, fake, _options())
    group_face = next(face for face in labelled.faces if face["flags"])
    other_face = next(
        f for f in labelled.faces if f["photo"] == group_face["photo"] and not f["proposed"]
    )
    sole = next(face for face in labelled.faces if face["searched"] == "bo")

    labelled.decide(group_face["face_id"], CONFIRMED)
    labelled.decide(other_face["face_id"], RELABELLED, "bo")
    labelled.decide(sole["face_id"], NOT_A_MEMBER)

    manifest = _manifest(collection)
    assert manifest[group_face["face_id"]] == "ana"
    assert manifest[other_face["face_id"]] == "bo"
    assert manifest[sole["face_id"]] == ""
    reloaded = LabelledSet.load(collection)
    assert reloaded.face(other_face["face_id"])["decision"] == RELABELLED

    reloaded.decide(sole["face_id"], DELETED)
    assert sole["face_id"] not in _manifest(collection)
    reloaded.decide(sole["face_id"], "")
    assert _manifest(collection)[sole["face_id"]] == "bo"


def test_photo_with_every_face_decided_is_listed_for_evaluation(tmp_path: Path) -> None:
    collection, fake = _collection(tmp_path)
    labelled = label_collection(collection, ROSTER, fake, fake, _options())
    group = [face for face in labelled.faces if face["photo"].endswith("ana-group.png")]

    labelled.decide(group[0]["face_id"], NOT_A_MEMBER)
    labelled.decide(group[1]["face_id"], CONFIRMED)

    with (collection / LABELLED_DIR / "photos.csv").open(encoding="utf-8") as stream:
        rows = {Path(row["photo"]).name: row for row in csv.DictReader(stream)}
    assert '"member": "ana"' in rows["ana-group.png"]["boxes"]
    assert len(rows) == 11


def test_invalid_decisions_are_refused(tmp_path: Path) -> None:
    collection, fake = _collection(tmp_path)
    labelled = label_collection(collection, ROSTER, fake, fake, _options())
    face_id = labelled.faces[0]["face_id"]

    with pytest.raises(InvalidParameterError, match="roster"):
        labelled.decide(face_id, RELABELLED, "zed")
    with pytest.raises(InvalidParameterError, match="decision"):
        labelled.decide(face_id, "maybe")
    with pytest.raises(InvalidParameterError, match="no face"):
        labelled.decide("nope", CONFIRMED)


def test_labelling_again_keeps_decisions_and_detects_only_new_photos(tmp_path: Path) -> None:
    collection, fake = _collection(tmp_path)
    labelled = label_collection(collection, ROSTER, fake, fake, _options())
    face_id = next(face["face_id"] for face in labelled.faces if face["searched"] == "bo")
    labelled.decide(face_id, RELABELLED, "cy")
    detected_first = fake.detected

    again = label_collection(collection, ROSTER, fake, fake, _options())

    assert fake.detected == detected_first
    assert again.face(face_id)["member"] == "cy"
    assert _manifest(collection)[face_id] == "cy"


def test_training_labels_follow_the_decision() -> None:
    face = {"member": "ana", "flags": ["several-faces"], "decision": ""}

    assert training_labels(face) is None  # type: ignore[arg-type]
    assert training_labels({**face, "decision": CONFIRMED}) == "ana"  # type: ignore[arg-type]
    assert training_labels({**face, "flags": []}) == "ana"  # type: ignore[arg-type]
    assert training_labels({**face, "decision": DELETED}) is None  # type: ignore[arg-type]


def test_export_of_a_labelled_collection_lists_the_faces_that_train(tmp_path: Path) -> None:
    from data_tools.labels_io import collection_labels

    collection, fake = _collection(tmp_path)
    labelled = label_collection(collection, ROSTER, fake, fake, _options())
    group = [face for face in labelled.faces if face["photo"].endswith("ana-group.png")]
    labelled.decide(group[0]["face_id"], NOT_A_MEMBER)

    photos = {photo.path.name: photo for photo in collection_labels(collection)}

    assert len(photos) == 11
    assert [box.member for box in photos["ana-group.png"].boxes] == [""]
    assert (photos["ana-group.png"].width, photos["ana-group.png"].height) == (320, 240)
    assert [box.member for box in photos["bo3.png"].boxes] == ["bo"]
