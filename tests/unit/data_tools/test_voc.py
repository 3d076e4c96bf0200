"""Tests of reading a Pascal VOC folder: name normalisation and what does not pair up."""

import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from data_tools.errors import DatasetError
from data_tools.voc import read_voc_folder

NFC_NAME = unicodedata.normalize("NFC", "방탄소년단 café")
NFD_NAME = unicodedata.normalize("NFD", "방탄소년단 café")

LabelledObject = tuple[str, tuple[int, int, int, int]]


def _voc_xml(filename: str, objects: list[LabelledObject]) -> str:
    object_elements = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
        f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
        for name, box in objects
    )
    return (
        f"<annotation><filename>{filename}</filename>"
        f"<size><width>64</width><height>48</height><depth>3</depth></size>"
        f"{object_elements}</annotation>"
    )


def _make_folder(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    return tmp_path


def _add_photo(folder: Path, name: str) -> Path:
    path = folder / "images" / name
    Image.new("RGB", (64, 48), (90, 120, 150)).save(path, format="JPEG")
    return path


def _add_annotation(
    folder: Path, stem: str, filename: str, objects: list[LabelledObject] | None = None
) -> Path:
    path = folder / "annotations" / f"{stem}.xml"
    path.write_text(_voc_xml(filename, objects or [("jin", (1, 2, 30, 40))]), encoding="utf-8")
    return path


def test_nfd_photo_name_matches_nfc_filename_in_the_xml(tmp_path: Path) -> None:
    folder = _make_folder(tmp_path)
    photo = _add_photo(folder, f"{NFD_NAME}.jpg")
    _add_annotation(folder, NFC_NAME, f"{NFC_NAME}.jpg")

    result = read_voc_folder(folder)

    assert [labelled.path for labelled in result.photos] == [photo]
    assert result.photos_without_labels == []
    assert result.labels_without_photos == []


def test_nfc_photo_name_matches_nfd_filename_in_the_xml(tmp_path: Path) -> None:
    folder = _make_folder(tmp_path)
    photo = _add_photo(folder, f"{NFC_NAME}.jpg")
    _add_annotation(folder, "labels", f"{NFD_NAME}.jpg")

    result = read_voc_folder(folder)

    assert [labelled.path for labelled in result.photos] == [photo]


def test_annotation_stem_pairs_when_the_xml_filename_is_wrong(tmp_path: Path) -> None:
    folder = _make_folder(tmp_path)
    photo = _add_photo(folder, "shot.jpeg")
    _add_annotation(folder, "shot", "shot-renamed-later.jpg")

    result = read_voc_folder(folder)

    assert [labelled.path for labelled in result.photos] == [photo]


def test_photos_without_labels_and_labels_without_photos_are_reported(tmp_path: Path) -> None:
    folder = _make_folder(tmp_path)
    _add_photo(folder, "labelled.jpg")
    unlabelled = _add_photo(folder, "unlabelled.jpg")
    _add_annotation(folder, "labelled", "labelled.jpg")
    orphan = _add_annotation(folder, "orphan", "gone.jpg")

    result = read_voc_folder(folder)

    assert len(result.photos) == 1
    assert result.photos_without_labels == [unlabelled]
    assert result.labels_without_photos == [orphan]


def test_unreadable_xml_is_skipped_and_reported(tmp_path: Path) -> None:
    folder = _make_folder(tmp_path)
    _add_photo(folder, "good.jpg")
    _add_photo(folder, "broken.jpg")
    _add_annotation(folder, "good", "good.jpg")
    broken = folder / "annotations" / "broken.xml"
    broken.write_text("<annotation><filename>broken.jpg</filename><object>", encoding="utf-8")

    result = read_voc_folder(folder)

    assert [labelled.path.name for labelled in result.photos] == ["good.jpg"]
    assert [annotation.path for annotation in result.unreadable_annotations] == [broken]
    assert [path.name for path in result.photos_without_labels] == ["broken.jpg"]


def test_boxes_members_and_size_are_read(tmp_path: Path) -> None:
    folder = _make_folder(tmp_path)
    _add_photo(folder, "group.jpg")
    _add_annotation(
        folder, "group", "group.jpg", [(" Jimin ", (3, 4, 20, 30)), ("v", (30, 4, 50, 30))]
    )

    result = read_voc_folder(folder)

    labelled = result.photos[0]
    assert [(box.member, box.box) for box in labelled.boxes] == [
        ("jimin", (3.0, 4.0, 20.0, 30.0)),
        ("v", (30.0, 4.0, 50.0, 30.0)),
    ]
    assert (labelled.width, labelled.height) == (64, 48)


def test_empty_boxes_and_nameless_objects_are_skipped_and_counted(tmp_path: Path) -> None:
    folder = _make_folder(tmp_path)
    _add_photo(folder, "group.jpg")
    objects = [("jin", (10, 10, 10, 30)), ("", (1, 1, 5, 5)), ("rm", (1, 1, 9, 9))]
    _add_annotation(folder, "group", "group.jpg", objects)

    result = read_voc_folder(folder)

    assert [box.member for box in result.photos[0].boxes] == ["rm"]
    assert result.skipped_boxes == 2


def test_missing_images_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        read_voc_folder(tmp_path / "nowhere")


def test_images_folder_without_photos_is_refused(tmp_path: Path) -> None:
    folder = _make_folder(tmp_path)
    (folder / "images" / "notes.txt").write_text("no photos here", encoding="utf-8")

    with pytest.raises(DatasetError, match="found none"):
        read_voc_folder(folder)


def test_missing_annotations_folder_leaves_every_photo_unlabelled(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    photo = _add_photo(tmp_path, "alone.jpg")

    result = read_voc_folder(tmp_path)

    assert result.photos == []
    assert result.photos_without_labels == [photo]
