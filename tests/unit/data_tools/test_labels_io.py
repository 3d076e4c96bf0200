"""Tests of label import and export: Pascal VOC XML folders and the plain CSV."""

import csv
from pathlib import Path

import pytest
from PIL import Image

from data_tools.errors import DatasetError
from data_tools.labels_io import (
    CSV_COLUMNS,
    read_csv_labels,
    read_voc_labels,
    resolve_members,
    write_csv_labels,
    write_voc_folder,
)
from data_tools.roster import parse_roster
from data_tools.voc import LabelledBox, LabelledPhoto

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_PHOTOS = REPO_ROOT / ".." / "shared" / "datasets" / "bts-group-photos"

ROSTER = parse_roster(
    {
        "group": "G",
        "members": [
            {"slug": "jhope", "display_name": "J-Hope", "aliases": ["Hoseok"]},
            {"slug": "v", "display_name": "V", "aliases": ["Taehyung"]},
        ],
    }
)


def _photo(folder: Path, name: str, size: tuple[int, int] = (120, 80)) -> Path:
    path = folder / name
    Image.new("RGB", size, (40, 90, 160)).save(path)
    return path


def _write_csv(path: Path, rows: list[list[object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)


def test_csv_rows_of_one_photo_become_one_photo_with_its_boxes(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    _write_csv(
        labels,
        [
            ["a.jpg", 120, 80, "v", 1, 2, 30, 40],
            ["b.jpg", "", "", "", 5, 5, 20, 20],
            ["a.jpg", 120, 80, "J-Hope", 50, 2, 90, 40],
        ],
    )

    photos = read_csv_labels(labels, tmp_path)

    assert [photo.path.name for photo in photos] == ["a.jpg", "b.jpg"]
    assert photos[0].boxes == [
        LabelledBox("v", (1.0, 2.0, 30.0, 40.0)),
        LabelledBox("J-Hope", (50.0, 2.0, 90.0, 40.0)),
    ]
    assert (photos[1].width, photos[1].boxes[0].member) == (0, "")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (["a.jpg", 1, 1, "v", "x", 0, 5, 5], "numbers"),
        (["a.jpg", 1, 1, "v", 10, 0, 5, 5], "x_max > x_min"),
    ],
)
def test_malformed_csv_row_names_its_line(tmp_path: Path, row: list[object], message: str) -> None:
    labels = tmp_path / "labels.csv"
    _write_csv(labels, [row])

    with pytest.raises(DatasetError, match=rf"labels.csv:2: .*{message}"):
        read_csv_labels(labels, tmp_path)


def test_csv_without_a_required_column_is_refused(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("photo,member\na.jpg,v\n", encoding="utf-8")

    with pytest.raises(DatasetError, match="lacks the columns"):
        read_csv_labels(labels, tmp_path)


def test_resolve_members_maps_aliases_keeps_nobody_and_counts_unknown_names(
    tmp_path: Path,
) -> None:
    photo = LabelledPhoto(
        path=tmp_path / "a.jpg",
        boxes=[
            LabelledBox("Hoseok", (0, 0, 5, 5)),
            LabelledBox("", (5, 5, 9, 9)),
            LabelledBox("stranger-ish", (1, 1, 4, 4)),
        ],
        width=10,
        height=10,
    )

    resolved = resolve_members([photo], ROSTER)

    assert [box.member for box in resolved.photos[0].boxes] == ["jhope", ""]
    assert resolved.unknown_names == {"stranger-ish": 1}


def test_voc_folder_round_trips_through_csv(tmp_path: Path) -> None:
    photos_dir = tmp_path / "photos"
    photos_dir.mkdir()
    photo_path = _photo(photos_dir, "group shot é.jpg")
    original = [
        LabelledPhoto(
            path=photo_path,
            boxes=[LabelledBox("v", (10, 10, 40, 50)), LabelledBox("", (60, 5, 90, 35))],
            width=0,
            height=0,
        )
    ]

    assert write_voc_folder(original, tmp_path / "voc") == 1
    from_voc = read_voc_labels(tmp_path / "voc")
    write_csv_labels(from_voc, tmp_path / "out.csv", tmp_path / "voc")
    from_csv = read_csv_labels(tmp_path / "out.csv", tmp_path / "voc")

    assert [photo.path.name for photo in from_csv] == ["group shot é.jpg"]
    assert (from_csv[0].width, from_csv[0].height) == (120, 80)
    # A face of nobody has no VOC name, so it does not survive the trip through VOC.
    assert from_csv[0].boxes == [LabelledBox("v", (10.0, 10.0, 40.0, 50.0))]


def test_csv_round_trip_keeps_faces_of_nobody(tmp_path: Path) -> None:
    photo_path = _photo(tmp_path, "a.png")
    original = [
        LabelledPhoto(
            path=photo_path,
            boxes=[LabelledBox("", (1, 2, 3, 4)), LabelledBox("v", (5, 6, 70, 80))],
            width=120,
            height=80,
        )
    ]

    rows = write_csv_labels(original, tmp_path / "labels.csv", tmp_path)

    assert rows == 2
    assert read_csv_labels(tmp_path / "labels.csv", tmp_path) == original


def test_two_photos_with_one_name_get_distinct_names_in_voc(tmp_path: Path) -> None:
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
    photos = [
        LabelledPhoto(_photo(tmp_path / folder, "same.jpg"), [LabelledBox("v", (1, 1, 9, 9))], 0, 0)
        for folder in ("one", "two")
    ]

    write_voc_folder(photos, tmp_path / "voc")

    assert sorted(path.name for path in (tmp_path / "voc" / "images").iterdir()) == [
        "same-1.jpg",
        "same.jpg",
    ]
    assert len(read_voc_labels(tmp_path / "voc")) == 2


def test_shared_voc_labels_export_to_csv_and_back_unchanged(tmp_path: Path) -> None:
    if not SHARED_PHOTOS.is_dir():
        pytest.skip(f"shared photos not found at {SHARED_PHOTOS}")
    shared = read_voc_labels(SHARED_PHOTOS)

    write_csv_labels(shared, tmp_path / "bts.csv", SHARED_PHOTOS)
    back = read_csv_labels(tmp_path / "bts.csv", SHARED_PHOTOS)

    assert len(back) == len(shared) > 150
    assert sum(len(photo.boxes) for photo in back) == sum(len(photo.boxes) for photo in shared)
    first = shared[0]
    again = next(photo for photo in back if photo.path.resolve() == first.path.resolve())
    assert [box.member for box in again.boxes] == [box.member for box in first.boxes]
    assert resolve_members(back, ROSTER).unknown_names.keys() >= {"jimin"}


def test_labels_import_command_turns_a_csv_with_aliases_into_a_voc_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.cli import main as memberlens

    _photo(tmp_path, "a.jpg")
    labels = tmp_path / "labels.csv"
    _write_csv(
        labels,
        [["a.jpg", 120, 80, "Taehyung", 1, 2, 30, 40], ["a.jpg", 120, 80, "Zed", 40, 2, 60, 40]],
    )
    roster = REPO_ROOT / "rosters" / "bts.yaml"

    status = memberlens(
        [
            "labels",
            "import",
            str(labels),
            "--format",
            "csv",
            "--roster",
            str(roster),
            "--out",
            str(tmp_path / "voc"),
        ]
    )

    assert status == 0
    assert "dropped 1 boxes named 'Zed'" in capsys.readouterr().out
    (photo,) = read_voc_labels(tmp_path / "voc")
    assert photo.boxes == [LabelledBox("v", (1.0, 2.0, 30.0, 40.0))]


def test_labels_export_command_writes_a_voc_folder_as_csv(tmp_path: Path) -> None:
    from service.cli import main as memberlens

    original = [LabelledPhoto(_photo(tmp_path, "a.jpg"), [LabelledBox("v", (5, 5, 50, 50))], 0, 0)]
    write_voc_folder(original, tmp_path / "voc")

    status = memberlens(
        [
            "labels",
            "export",
            str(tmp_path / "voc"),
            "--format",
            "csv",
            "--out",
            str(tmp_path / "out.csv"),
        ]
    )

    assert status == 0
    assert (tmp_path / "out.csv").read_text("utf-8").splitlines() == [
        ",".join(CSV_COLUMNS),
        "images/a.jpg,120,80,v,5,5,50,50",
    ]
