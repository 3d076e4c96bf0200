"""Post a real group photo to the service running a bundle trained on real photos."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from data_tools.matching import match_faces
from service.app import create_app
from service.settings import Settings


@pytest.fixture(scope="module")
def client(small_bundle: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(app=create_app(Settings(bundle=small_bundle))) as test_client:
        yield test_client


def _held_back_photo(small_prepared: Path) -> tuple[Path, list[dict[str, object]]]:
    """The first valid-split photo (by name) that shows at least five labelled members."""
    import pandas as pd

    photos = pd.read_csv(small_prepared / "photos.csv", keep_default_na=False)
    for _, row in photos[photos["split"] == "valid"].sort_values("photo").iterrows():
        boxes = json.loads(row["boxes"])
        if len({box["member"] for box in boxes}) >= 5:
            return Path(row["photo"]), boxes
    raise AssertionError("the subset has no held-back photo with five members")


def test_group_photo_gets_members_with_boxes_on_their_faces(
    client: TestClient,
    small_prepared: Path,  # type: ignore[type-arg]
) -> None:
    photo, labelled = _held_back_photo(small_prepared)

    response = client.post("/v1/identify", files={"image": (photo.name, photo.read_bytes())})

    assert response.status_code == 200, response.text
    answer = response.json()
    named = [member for member in answer["members"] if member["source"] == "face"]
    assert len(named) >= 3, answer["members"]
    assert len({member["name"] for member in named}) == len(named), "a member named twice"
    labelled_boxes = [(b["x_min"], b["y_min"], b["x_max"], b["y_max"]) for b in labelled]
    named_boxes = [tuple(member["box"].values()) for member in named]
    matching = match_faces(labelled_boxes, named_boxes)
    right = sum(
        1
        for match in matching.matches
        if named[match.detection_index]["name"] == labelled[match.labelled_index]["member"]
    )
    assert right >= 0.7 * len(named), (answer["members"], labelled)


def test_answer_follows_the_contract(client: TestClient, small_prepared: Path) -> None:  # type: ignore[type-arg]
    photo, _ = _held_back_photo(small_prepared)

    answer = client.post("/v1/identify", files={"image": (photo.name, photo.read_bytes())}).json()

    assert set(answer) >= {"image", "members", "faces", "image_scores", "model", "timings_ms"}
    assert answer["model"]["bundle"] == "test-small"
    assert answer["model"]["thresholds"].startswith("sha256:")
    width, height = answer["image"]["width"], answer["image"]["height"]
    for face in answer["faces"]:
        box = face["box"]
        assert 0 <= box["x_min"] < box["x_max"] <= width
        assert 0 <= box["y_min"] < box["y_max"] <= height
        assert len(face["landmarks"]) == 5
        assert face["member"] in {None, "jhope", "jimin", "jin", "jungkook", "rm", "suga", "v"}
        assert 1 <= len(face["candidates"]) <= 3
