"""Read a roster file: the group, its members in label order, their names and search queries."""

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import yaml

from data_tools.errors import DatasetError, UnknownMemberError

logger = logging.getLogger(__name__)

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class MemberDict(TypedDict):
    """One member as a roster file and a model bundle spell it."""

    slug: str
    display_name: str
    aliases: list[str]
    queries: list[str]


class RosterDict(TypedDict):
    """A whole roster as a roster file and a model bundle spell it."""

    group: str
    members: list[MemberDict]


@dataclass(frozen=True)
class Member:
    """One person in the group, named by a stable slug."""

    slug: str
    display_name: str
    aliases: tuple[str, ...]
    queries: tuple[str, ...]


@dataclass(frozen=True)
class Roster:
    """The ordered members of a group; the order defines the label indices."""

    group: str
    members: tuple[Member, ...]

    @property
    def slugs(self) -> list[str]:
        """Return the member slugs in label order."""
        return [member.slug for member in self.members]

    def member(self, slug: str) -> Member:
        """Return the member with this slug.

        Raises:
            UnknownMemberError: no member has this slug.
        """
        for member in self.members:
            if member.slug == slug:
                return member
        raise UnknownMemberError(
            f"member {slug!r} is not in the roster of {self.group}; "
            f"expected one of {', '.join(self.slugs)}"
        )

    def resolve(self, name: str) -> str:
        """Return the slug of the member that a slug, display name or alias names.

        Matching ignores case, accents, spaces and punctuation, so "J-Hope", "jhope" and
        "J Hope" all name the same member.

        Raises:
            UnknownMemberError: no member goes by this name.
        """
        key = normalise_name(name)
        for member in self.members:
            if key in _member_keys(member):
                return member.slug
        raise UnknownMemberError(
            f"no member of {self.group} is called {name!r}; "
            f"expected a slug, display name or alias of {', '.join(self.slugs)}"
        )

    def to_dict(self) -> RosterDict:
        """Return the roster as plain data, as a model bundle records it."""
        return {
            "group": self.group,
            "members": [
                {
                    "slug": member.slug,
                    "display_name": member.display_name,
                    "aliases": list(member.aliases),
                    "queries": list(member.queries),
                }
                for member in self.members
            ],
        }

    def fingerprint(self) -> str:
        """Return `sha256:<hex>` of the roster's content, stable across file formatting."""
        text = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_roster(path: Path) -> Roster:
    """Read and validate a roster YAML file.

    Raises:
        DatasetError: the file is missing, is not YAML, or does not describe a valid roster.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DatasetError(
            f"cannot read roster file {path}: {err.strerror}; pass the path of a roster YAML "
            "file such as rosters/bts.yaml"
        ) from err
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise DatasetError(f"roster file {path} is not valid YAML: {err}") from err
    roster = parse_roster(document, source=str(path))
    logger.info("roster loaded", extra={"roster": str(path), "members": len(roster.members)})
    return roster


def parse_roster(document: object, source: str = "roster") -> Roster:
    """Build a roster from parsed YAML or JSON (a mapping with `group` and `members`).

    A member without queries is searched for as "<group> <display name>".

    Raises:
        DatasetError: a field is missing or has the wrong type, a slug is malformed, or two
            members share a slug or a name.
    """
    if not isinstance(document, Mapping):
        raise DatasetError(f"{source}: expected a mapping with 'group' and 'members'")
    group = _required_text(document, "group", source)
    raw_members = document.get("members")
    if not isinstance(raw_members, Sequence) or isinstance(raw_members, str) or not raw_members:
        raise DatasetError(f"{source}: 'members' must be a non-empty list of members")

    members = tuple(
        _parse_member(raw, group, f"{source}: members[{index}]")
        for index, raw in enumerate(raw_members)
    )
    _check_unique(members, source)
    return Roster(group=group, members=members)


def normalise_name(name: str) -> str:
    """Return a name folded for matching: NFKD, no accents, lower case, letters and digits only."""
    decomposed = unicodedata.normalize("NFKD", name)
    kept = (char for char in decomposed if not unicodedata.combining(char) and char.isalnum())
    return "".join(kept).casefold()


def _parse_member(raw: object, group: str, where: str) -> Member:
    if not isinstance(raw, Mapping):
        raise DatasetError(f"{where}: expected a mapping with 'slug' and 'display_name'")
    slug = _required_text(raw, "slug", where)
    if not SLUG_PATTERN.match(slug):
        raise DatasetError(f"{where}: slug {slug!r} must be lower-case letters, digits, '_' or '-'")
    display_name = _required_text(raw, "display_name", where)
    aliases = _text_list(raw, "aliases", where)
    queries = _text_list(raw, "queries", where) or (f"{group} {display_name}",)
    return Member(slug=slug, display_name=display_name, aliases=aliases, queries=queries)


def _required_text(mapping: Mapping[str, object], key: str, where: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise DatasetError(f"{where}: '{key}' must be a non-empty string")
    return str(value).strip()


def _text_list(mapping: Mapping[str, object], key: str, where: str) -> tuple[str, ...]:
    value = mapping.get(key, [])
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise DatasetError(f"{where}: '{key}' must be a list of strings")
    texts = []
    for item in value:
        if not isinstance(item, str | int) or isinstance(item, bool) or not str(item).strip():
            raise DatasetError(f"{where}: every entry of '{key}' must be a non-empty string")
        texts.append(str(item).strip())
    return tuple(texts)


def _member_keys(member: Member) -> set[str]:
    names = [member.slug, member.display_name, *member.aliases]
    return {normalise_name(name) for name in names} - {""}


def _check_unique(members: Sequence[Member], source: str) -> None:
    owners: dict[str, str] = {}
    slugs: set[str] = set()
    for member in members:
        if member.slug in slugs:
            raise DatasetError(f"{source}: slug {member.slug!r} appears twice")
        slugs.add(member.slug)
        for key in _member_keys(member):
            owner = owners.setdefault(key, member.slug)
            if owner != member.slug:
                raise DatasetError(
                    f"{source}: the name {key!r} would mean both {owner!r} and "
                    f"{member.slug!r}; give each member distinct names"
                )
