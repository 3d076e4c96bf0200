"""Tests of roster files: loading, validation, name resolution and the shipped BTS roster."""

from pathlib import Path

import pytest

from data_tools.errors import DatasetError, UnknownMemberError
from data_tools.roster import load_roster, parse_roster

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_ANNOTATIONS = REPO_ROOT / ".." / "shared" / "datasets" / "bts-group-photos" / "annotations"


def _document(**overrides: object) -> dict[str, object]:
    document: dict[str, object] = {
        "group": "Testband",
        "members": [
            {"slug": "ana", "display_name": "Ana", "aliases": ["Ana B."], "queries": ["Ana TB"]},
            {"slug": "bo-kim", "display_name": "Bo Kim"},
        ],
    }
    document.update(overrides)
    return document


def test_shipped_bts_roster_lists_the_seven_members_in_label_order() -> None:
    roster = load_roster(REPO_ROOT / "rosters" / "bts.yaml")

    assert roster.group == "BTS"
    assert roster.slugs == ["jhope", "jimin", "jin", "jungkook", "rm", "suga", "v"]
    assert all(member.queries for member in roster.members)


def test_shipped_bts_roster_covers_every_label_of_the_shared_photos() -> None:
    if not SHARED_ANNOTATIONS.is_dir():
        pytest.skip(f"shared photos not found at {SHARED_ANNOTATIONS}")
    roster = load_roster(REPO_ROOT / "rosters" / "bts.yaml")
    names = set()
    for path in SHARED_ANNOTATIONS.glob("*.xml"):
        text = path.read_text(encoding="utf-8", errors="replace")
        names.update(part.split("</name>")[0] for part in text.split("<name>")[1:])

    assert {roster.resolve(name) for name in names} <= set(roster.slugs)


def test_member_without_queries_is_searched_as_group_and_display_name() -> None:
    roster = parse_roster(_document())

    assert roster.member("bo-kim").queries == ("Testband Bo Kim",)
    assert roster.member("ana").queries == ("Ana TB",)


def test_resolve_ignores_case_spaces_punctuation_and_accents() -> None:
    roster = parse_roster(_document())

    assert roster.resolve("BO KIM") == "bo-kim"
    assert roster.resolve("ana b") == "ana"
    assert roster.resolve("Àna") == "ana"


def test_resolve_unknown_name_raises_unknown_member() -> None:
    roster = parse_roster(_document())

    with pytest.raises(UnknownMemberError, match="no member"):
        roster.resolve("Carla")


def test_member_lookup_of_unknown_slug_names_the_known_slugs() -> None:
    roster = parse_roster(_document())

    with pytest.raises(UnknownMemberError, match="ana, bo-kim"):
        roster.member("carla")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"group": ""}, "'group'"),
        ({"members": []}, "non-empty list"),
        ({"members": [{"slug": "Ana", "display_name": "Ana"}]}, "lower-case"),
        ({"members": [{"slug": "ana"}]}, "display_name"),
        (
            {"members": [{"slug": "a", "display_name": "A"}, {"slug": "a", "display_name": "B"}]},
            "twice",
        ),
        (
            {"members": [{"slug": "a", "display_name": "Bo"}, {"slug": "bo", "display_name": "C"}]},
            "both",
        ),
        ({"members": [{"slug": "a", "display_name": "A", "aliases": "x"}]}, "list of strings"),
    ],
)
def test_invalid_roster_is_refused_with_the_reason(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_roster(_document(**overrides))


def test_missing_or_malformed_file_raises_dataset_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("group: [unclosed\n", encoding="utf-8")

    with pytest.raises(DatasetError, match="cannot read"):
        load_roster(tmp_path / "missing.yaml")
    with pytest.raises(DatasetError, match="not valid YAML"):
        load_roster(broken)


def test_fingerprint_changes_with_content_not_formatting(tmp_path: Path) -> None:
    compact = tmp_path / "compact.yaml"
    compact.write_text("group: G\nmembers: [{slug: a, display_name: A}]\n", encoding="utf-8")
    spaced = tmp_path / "spaced.yaml"
    spaced.write_text(
        "# comment\ngroup: G\nmembers:\n  - slug: a\n    display_name: A\n", encoding="utf-8"
    )
    renamed = parse_roster({"group": "G", "members": [{"slug": "a", "display_name": "Z"}]})

    assert load_roster(compact).fingerprint() == load_roster(spaced).fingerprint()
    assert load_roster(compact).fingerprint() != renamed.fingerprint()
    assert load_roster(compact).to_dict()["members"][0]["slug"] == "a"
