"""Collect photos of each roster member from an image search into a resumable collection folder.

A collection folder holds `photos/<member>/<sha256 prefix>.<ext>`, `provenance.jsonl` (one
record per saved photo) and `attempts.jsonl` (one record per URL that gave no new photo); see
`data_tools.collect_journal`. Downloads wait in `.partial/` until they are checked and
recorded, so a collect that is killed and run again fetches no saved URL twice and leaves no
partial file under a final name.
"""

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from data_tools.collect_journal import PHOTOS_DIR, CollectJournal, ProvenanceRecord
from data_tools.errors import DatasetError
from data_tools.fetch import (
    EXTENSION_BY_FORMAT,
    DownloadLimits,
    FetchOutcome,
    build_client,
    fetch_photo,
)
from data_tools.roster import Member, Roster
from data_tools.search_backends import ImageSearchBackend, SearchHit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectOptions:
    """How many photos to get per member, and how to get them."""

    per_member: int
    workers: int = 4
    candidates_per_query: int = 0  # 0: three times per_member, plus ten
    retry_transient: bool = False
    show_progress: bool = True
    limits: DownloadLimits = field(default_factory=DownloadLimits)


@dataclass
class CollectSummary:
    """What one collect run did, per member and per failure reason."""

    saved_before: dict[str, int] = field(default_factory=dict)
    saved_now: dict[str, int] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    skipped_known: int = 0

    def render(self) -> str:
        """Return the summary as a few readable lines."""
        lines = ["member      before  new  total"]
        for slug, before in self.saved_before.items():
            new = self.saved_now.get(slug, 0)
            lines.append(f"{slug:<10} {before:>7} {new:>4} {before + new:>6}")
        lines.append(f"duplicates skipped: {self.duplicates}")
        lines.append(f"URLs already tried, not fetched again: {self.skipped_known}")
        failures = ", ".join(f"{reason} {count}" for reason, count in self.failures.most_common())
        lines.append(f"failed downloads: {failures or 'none'}")
        return "\n".join(lines)


def collect(
    roster: Roster,
    out_dir: Path,
    backend: ImageSearchBackend,
    options: CollectOptions,
    members: list[Member] | None = None,
    client: httpx.Client | None = None,
) -> CollectSummary:
    """Search for each member and download photos until each has `per_member` of them.

    Args:
        roster: the group whose members are searched for.
        out_dir: the collection folder; created if missing, resumed if it exists.
        backend: where the photo URLs come from.
        options: counts, concurrency and download limits.
        members: the members to collect for; all of the roster when `None`.
        client: the HTTP client for downloads; by default one from `build_client`. A client
            passed in is used as it is and not closed.

    Raises:
        DatasetError: the folder cannot be written, or the search failed.
    """
    if options.per_member < 1:
        raise DatasetError(f"--per-member must be at least 1, got {options.per_member}")
    journal = CollectJournal.open(out_dir)
    chosen = members if members is not None else list(roster.members)
    summary = CollectSummary()
    total = options.per_member * len(chosen)
    done = sum(min(journal.saved_count(member.slug), options.per_member) for member in chosen)
    with (
        journal,
        _client_context(client, options) as http_client,
        ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="fetch") as pool,
        tqdm(
            total=total,
            initial=done,
            unit="photo",
            desc="collect",
            disable=None if options.show_progress else True,
        ) as progress,
    ):
        try:
            for member in chosen:
                summary.saved_before[member.slug] = journal.saved_count(member.slug)
                hits = _search_member(backend, member, options)
                _collect_member(
                    member, hits, journal, http_client, pool, options, summary, progress
                )
        except BaseException:
            # Interrupted or failed: start nothing new; what is running ends within its
            # timeouts, and its part file is removed by the next run.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    logger.info(
        "collect finished",
        extra={"out": str(out_dir), "saved": sum(summary.saved_now.values())},
    )
    return summary


def _client_context(
    client: httpx.Client | None, options: CollectOptions
) -> contextlib.AbstractContextManager[httpx.Client]:
    if client is not None:
        return contextlib.nullcontext(client)
    return build_client(options.limits, options.workers)


def _search_member(
    backend: ImageSearchBackend, member: Member, options: CollectOptions
) -> list[tuple[str, SearchHit]]:
    wanted = options.candidates_per_query or options.per_member * 3 + 10
    hits: list[tuple[str, SearchHit]] = []
    seen: set[str] = set()
    for query in member.queries:
        for hit in backend.search_images(query, wanted):
            if hit.image_url not in seen:
                seen.add(hit.image_url)
                hits.append((query, hit))
    logger.info("member searched", extra={"member": member.slug, "hits": len(hits)})
    return hits


def _collect_member(
    member: Member,
    hits: list[tuple[str, SearchHit]],
    journal: CollectJournal,
    client: httpx.Client,
    pool: ThreadPoolExecutor,
    options: CollectOptions,
    summary: CollectSummary,
    progress: "tqdm[Any]",
) -> None:
    known = journal.known_urls(retry_transient=options.retry_transient)
    pending = _unknown_hits(hits, known, summary)
    in_flight: dict[Future[FetchOutcome], tuple[str, SearchHit]] = {}
    saved = journal.saved_count(member.slug)
    while True:
        # Never more downloads in flight than photos still wanted, so a member never ends
        # with more than `per_member` photos, nor more than the workers, so that an
        # interrupted run has no queue of downloads left to finish.
        while saved + len(in_flight) < options.per_member and len(in_flight) < options.workers:
            candidate = next(pending, None)
            if candidate is None:
                break
            query, hit = candidate
            part_path = journal.part_path(hit.image_url)
            future = pool.submit(fetch_photo, client, hit.image_url, part_path, options.limits)
            in_flight[future] = candidate
        if not in_flight:
            break
        finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in finished:
            query, hit = in_flight.pop(future)
            is_new = _record_outcome(member, query, hit, future.result(), journal, summary)
            if is_new:
                saved += 1
                progress.update(1)
    if saved < options.per_member:
        logger.warning(
            "member short of photos",
            extra={"member": member.slug, "saved": saved, "wanted": options.per_member},
        )


def _unknown_hits(
    hits: list[tuple[str, SearchHit]], known: set[str], summary: CollectSummary
) -> Iterator[tuple[str, SearchHit]]:
    for query, hit in hits:
        if hit.image_url in known:
            summary.skipped_known += 1
            continue
        yield query, hit


def _record_outcome(
    member: Member,
    query: str,
    hit: SearchHit,
    outcome: FetchOutcome,
    journal: CollectJournal,
    summary: CollectSummary,
) -> bool:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if not outcome.is_saved or outcome.part_path is None:
        summary.failures[outcome.reason] += 1
        logger.debug("download failed", extra={"url": hit.image_url, "reason": outcome.reason})
        journal.record_attempt(
            {
                "member": member.slug,
                "image_url": hit.image_url,
                "outcome": "failed",
                "reason": outcome.reason,
                "detail": outcome.detail,
                "is_transient": outcome.is_transient,
                "at": now,
            }
        )
        return False

    duplicate_of = journal.saved_by_sha256().get(outcome.sha256)
    if duplicate_of is not None:
        outcome.part_path.unlink(missing_ok=True)
        summary.duplicates += 1
        journal.record_attempt(
            {
                "member": member.slug,
                "image_url": hit.image_url,
                "outcome": "duplicate",
                "reason": "same-bytes",
                "duplicate_of": duplicate_of,
                "is_transient": False,
                "at": now,
            }
        )
        return False

    extension = EXTENSION_BY_FORMAT[outcome.image_format]
    relative = f"{PHOTOS_DIR}/{member.slug}/{outcome.sha256[:16]}.{extension}"
    record: ProvenanceRecord = {
        "member": member.slug,
        "path": relative,
        "query": query,
        "image_url": hit.image_url,
        "final_url": outcome.final_url,
        "page_url": hit.page_url,
        "title": hit.title,
        "fetched_at": now,
        "sha256": outcome.sha256,
        "size_bytes": outcome.size_bytes,
        "format": outcome.image_format,
        "width": outcome.width,
        "height": outcome.height,
    }
    journal.record_saved(record, outcome.part_path)
    summary.saved_now[member.slug] = summary.saved_now.get(member.slug, 0) + 1
    return True
