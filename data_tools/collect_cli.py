"""Register `memberlens collect`, `check`, `label`, `review` and `labels`: building a training set.

Parsers only: each handler imports its module when it runs, so `memberlens --help` stays fast
and torch is imported only by the commands that detect faces.
"""

import argparse
import logging
from pathlib import Path

from service.settings import Settings

logger = logging.getLogger(__name__)


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the training-set subcommands to the `memberlens` parser."""
    _register_collect(subparsers)
    _register_check(subparsers)


def _register_collect(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "collect",
        help="download photos of each roster member from an image search",
        description=(
            "Search the web for each member of ROSTER and download photos into OUT: "
            "photos/<member>/, provenance.jsonl (source URL, page, time, sha256 per photo) and "
            "attempts.jsonl. Run it again to resume or top up: no saved URL is fetched twice."
        ),
    )
    parser.add_argument("roster", type=Path, metavar="ROSTER", help="roster YAML file")
    parser.add_argument(
        "--per-member", type=_positive_int, required=True, metavar="N", help="photos per member"
    )
    parser.add_argument("--out", type=Path, required=True, help="collection folder")
    parser.add_argument(
        "--member",
        action="append",
        dest="members",
        metavar="SLUG",
        help="collect only for this member (repeatable); default: every member",
    )
    parser.add_argument(
        "--search-endpoint",
        metavar="URL",
        help=(
            "search through this JSON endpoint (GET ?query=Q&max_results=N answering "
            '{"results": [{"image": URL, "url": PAGE}]}) instead of ddgs'
        ),
    )
    parser.add_argument("--search-timeout-s", type=_positive_float, default=20.0)
    parser.add_argument(
        "--candidates",
        type=_positive_int,
        default=0,
        metavar="N",
        help="search results asked for per query (default: 3 x per-member + 10)",
    )
    parser.add_argument("--workers", type=_positive_int, default=4, help="parallel downloads")
    parser.add_argument(
        "--max-bytes",
        type=_positive_int,
        default=None,
        help="largest download in bytes (default: the service's upload limit)",
    )
    parser.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=None,
        help="largest photo in pixels (default: the service's pixel limit)",
    )
    parser.add_argument("--connect-timeout-s", type=_positive_float, default=5.0)
    parser.add_argument("--read-timeout-s", type=_positive_float, default=10.0)
    parser.add_argument(
        "--total-timeout-s", type=_positive_float, default=60.0, help="per download, all reads"
    )
    parser.add_argument("--retries", type=_non_negative_int, default=2)
    parser.add_argument(
        "--backoff-s", type=_non_negative_float, default=0.5, help="first retry delay"
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="try again URLs that failed for a transient reason (timeout, 5xx) last time",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run_collect)


def run_collect(args: argparse.Namespace, settings: Settings) -> int:
    """Run `memberlens collect`: search, download, and print a summary."""
    from data_tools.collect import CollectOptions, collect
    from data_tools.fetch import DownloadLimits
    from data_tools.roster import load_roster
    from data_tools.search_backends import DdgsBackend, ImageSearchBackend, JsonSearchBackend

    roster = load_roster(args.roster)
    members = [roster.member(slug) for slug in args.members] if args.members else None
    backend: ImageSearchBackend
    if args.search_endpoint:
        backend = JsonSearchBackend(args.search_endpoint, timeout_s=args.search_timeout_s)
    else:
        backend = DdgsBackend(timeout_s=args.search_timeout_s)
    limits = DownloadLimits(
        max_bytes=args.max_bytes or settings.limits.max_upload_bytes,
        max_pixels=args.max_pixels or settings.limits.max_pixels,
        connect_timeout_s=args.connect_timeout_s,
        read_timeout_s=args.read_timeout_s,
        total_timeout_s=args.total_timeout_s,
        retries=args.retries,
        backoff_s=args.backoff_s,
    )
    options = CollectOptions(
        per_member=args.per_member,
        workers=args.workers,
        candidates_per_query=args.candidates,
        retry_transient=args.retry_failed,
        show_progress=not args.no_progress,
        limits=limits,
    )
    summary = collect(roster, args.out, backend, options, members=members)
    print(summary.render())
    return 0


def _register_check(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "check",
        help="decode every collected photo; quarantine the unusable and duplicates",
        description=(
            "Decode every file under COLLECTION/photos in full. Move corrupt, truncated, too "
            "small, too large, non-image and animated files to COLLECTION/quarantine/<reason>/, "
            "keep one photo of each group of exact or near duplicates, print a summary and "
            "write COLLECTION/check_report.json."
        ),
    )
    parser.add_argument("collection", type=Path, metavar="COLLECTION", help="collection folder")
    parser.add_argument(
        "--min-side-px", type=_positive_int, default=128, help="shorter side of a usable photo"
    )
    parser.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=None,
        help="largest photo in pixels (default: the service's pixel limit)",
    )
    parser.add_argument(
        "--near-duplicate-distance",
        type=_non_negative_int,
        default=6,
        help="largest perceptual-hash distance (bits) between two copies of one shot",
    )
    parser.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    """Run `memberlens check` and print its summary."""
    from data_tools.check import CheckOptions, check_collection

    options = CheckOptions(
        min_side_px=args.min_side_px,
        max_pixels=args.max_pixels or settings.limits.max_pixels,
        near_duplicate_distance=args.near_duplicate_distance,
    )
    report = check_collection(args.collection, options)
    print(report.render())
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {text}")
    return value
