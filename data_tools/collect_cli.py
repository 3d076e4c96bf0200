"""Register `memberlens collect`, `check`, `label`, `review` and `labels`: building a training set.

Parsers only: each handler imports its module when it runs, so `memberlens --help` stays fast
and torch is imported only by the commands that detect faces. The parsers of five commands make
this file run past 400 lines; they stay together because they are one workflow.
"""

import argparse
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from service.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from data_tools.label_proposals import FaceDescriber

logger = logging.getLogger(__name__)


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the training-set subcommands to the `memberlens` parser."""
    _register_collect(subparsers)
    _register_check(subparsers)
    _register_label(subparsers)
    _register_review(subparsers)
    _register_labels(subparsers)


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
            "small, too large (in pixels), non-image and animated files to "
            "COLLECTION/quarantine/<reason>/, keep one photo of each group of exact or near "
            "duplicates, print a summary and write COLLECTION/check_report.json."
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
        default=None,
        help="largest perceptual-hash distance in bits (of 64) between two copies of one shot "
        "(default: the one `prepare` groups by)",
    )
    parser.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    """Run `memberlens check` and print its summary."""
    from data_tools.check import REPORT_FILE, CheckOptions, check_collection

    options = CheckOptions(
        min_side_px=args.min_side_px,
        max_pixels=args.max_pixels or settings.limits.max_pixels,
    )
    if args.near_duplicate_distance is not None:
        options = replace(options, near_duplicate_distance=args.near_duplicate_distance)
    report = check_collection(args.collection, options)
    print(report.render())
    print(f"report: {args.collection / REPORT_FILE}")
    return 0


def _register_label(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "label",
        help="propose a member label for every face of a checked collection",
        description=(
            "Detect and align every face of COLLECTION/photos/<member>/ and propose labels: "
            "a photo's only face gets the searched member; in a photo of several faces, the "
            "face nearest the member's other faces does, flagged for review. Faces far from "
            "their member's cluster, nearer another member's, of low detection score or tiny "
            "are flagged too. Writes COLLECTION/labelled/ (chips/, faces.csv and photos.csv "
            "for `memberlens train --prepared`, proposals.json for `memberlens review`). "
            "Run it again after adding photos: review decisions are kept."
        ),
    )
    parser.add_argument("collection", type=Path, metavar="COLLECTION", help="collection folder")
    parser.add_argument("--roster", type=Path, required=True, help="roster YAML file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/valid split")
    parser.add_argument(
        "--valid-share", type=float, default=0.2, help="share of duplicate groups in valid"
    )
    parser.add_argument(
        "--min-detection-score", type=float, default=0.9, help="flag faces the detector doubts"
    )
    parser.add_argument(
        "--min-face-px", type=_positive_int, default=40, help="flag faces with a shorter side"
    )
    parser.add_argument(
        "--far-mads",
        type=_positive_float,
        default=3.0,
        help="flag faces this many robust deviations under their member's typical similarity",
    )
    parser.add_argument(
        "--min-cluster-faces",
        type=_positive_int,
        default=3,
        help="faces a member needs before faces are compared with its cluster",
    )
    parser.set_defaults(handler=run_label)


def run_label(args: argparse.Namespace, settings: Settings) -> int:
    """Run `memberlens label` and print how many faces were proposed and flagged."""
    from data_tools.faces import MtcnnDetector
    from data_tools.label_proposals import ProposalOptions
    from data_tools.labelling import LabelOptions, label_collection, summarise_labels
    from data_tools.roster import load_roster

    roster = load_roster(args.roster)
    options = LabelOptions(
        max_photo_bytes=settings.limits.max_upload_bytes,
        max_photo_pixels=settings.limits.max_pixels,
        seed=args.seed,
        valid_share=args.valid_share,
        proposals=ProposalOptions(
            min_detection_score=args.min_detection_score,
            min_face_px=args.min_face_px,
            far_mads=args.far_mads,
            min_cluster_faces=args.min_cluster_faces,
        ),
    )
    describer = _dlib_describer()
    labelled = label_collection(args.collection, roster, MtcnnDetector(), describer, options)
    print(summarise_labels(labelled))
    return 0


def _register_review(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "review",
        help="review flagged faces in a local web page",
        description=(
            "Serve a page on 127.0.0.1 that shows each face `memberlens label` flagged beside "
            "its photo. Keys: j/k next/previous, Enter confirm, 1-9 relabel, n not a member, "
            "x delete, u undo, a show every face. Each decision is saved at once to "
            "COLLECTION/labelled/ (proposals.json and the training manifest faces.csv)."
        ),
    )
    parser.add_argument("collection", type=Path, metavar="COLLECTION", help="collection folder")
    parser.add_argument("--roster", type=Path, required=True, help="roster YAML file")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1")
    parser.set_defaults(handler=run_review)


def run_review(args: argparse.Namespace, settings: Settings) -> int:
    """Run `memberlens review` until interrupted."""
    from data_tools.labelled_set import LabelledSet
    from data_tools.review import serve_review
    from data_tools.roster import load_roster

    roster = load_roster(args.roster)
    labelled = LabelledSet.load(args.collection)
    print(f"review page: http://127.0.0.1:{args.port}/  (Ctrl-C to stop)", flush=True)
    serve_review(labelled, roster, args.port)
    return 0


def _register_labels(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "labels",
        help="import or export face labels as Pascal VOC XML or CSV",
        description="Move face labels between memberlens and other tools.",
    )
    actions = parser.add_subparsers(dest="labels_command", metavar="ACTION", required=True)
    importer = actions.add_parser(
        "import",
        help="turn VOC or CSV labels into a VOC folder that `memberlens prepare` reads",
        description=(
            "Read labels made elsewhere (a VOC folder with images/ and annotations/, or a CSV "
            "with columns photo,width,height,member,x_min,y_min,x_max,y_max), map every member "
            "name to a roster slug through slugs, display names and aliases, and write a VOC "
            "folder (images/ linked or copied, annotations/) for `memberlens prepare --photos`."
        ),
    )
    importer.add_argument("source", type=Path, metavar="SOURCE", help="VOC folder or CSV file")
    importer.add_argument("--format", choices=("voc", "csv"), required=True, dest="label_format")
    importer.add_argument("--roster", type=Path, required=True, help="roster YAML file")
    importer.add_argument(
        "--photos",
        type=Path,
        default=None,
        help="folder the CSV's photo paths are relative to (default: the CSV's folder)",
    )
    importer.add_argument("--out", type=Path, required=True, help="VOC folder to write")
    importer.set_defaults(handler=run_labels_import)
    exporter = actions.add_parser(
        "export",
        help="write the labels of a labelled collection or a VOC folder as VOC or CSV",
        description=(
            "Write face labels as a CSV file or as a VOC folder (images/ and annotations/). "
            "SOURCE is a collection labelled by `memberlens label` (its faces that train, with "
            "review decisions applied; faces of nobody known are kept in CSV only), or a VOC "
            "folder."
        ),
    )
    exporter.add_argument("source", type=Path, metavar="SOURCE", help="collection or VOC folder")
    exporter.add_argument("--format", choices=("voc", "csv"), required=True, dest="label_format")
    exporter.add_argument("--out", type=Path, required=True, help="CSV file or VOC folder")
    exporter.set_defaults(handler=run_labels_export)


def run_labels_import(args: argparse.Namespace, settings: Settings) -> int:
    """Run `memberlens labels import` and print what was written and what was dropped."""
    from data_tools.labels_io import (
        read_csv_labels,
        read_voc_labels,
        resolve_members,
        write_voc_folder,
    )
    from data_tools.roster import load_roster

    roster = load_roster(args.roster)
    if args.label_format == "csv":
        photos_root = args.photos or args.source.parent
        photos = read_csv_labels(args.source, photos_root)
    else:
        photos = read_voc_labels(args.source)
    resolved = resolve_members(photos, roster)
    written = write_voc_folder(resolved.photos, args.out)
    print(f"wrote {written} labelled photos to {args.out}")
    for name, count in resolved.unknown_names.most_common():
        print(f"dropped {count} boxes named {name!r}: no member of {roster.group} goes by it")
    return 0


def run_labels_export(args: argparse.Namespace, settings: Settings) -> int:
    """Run `memberlens labels export` and print what was written."""
    from data_tools.labelled_set import LABELLED_DIR
    from data_tools.labels_io import (
        collection_labels,
        read_voc_labels,
        write_csv_labels,
        write_voc_folder,
    )

    if (args.source / LABELLED_DIR).is_dir():
        photos = collection_labels(args.source)
        photos_root = args.source
    else:
        photos = read_voc_labels(args.source)
        photos_root = args.source
    if args.label_format == "csv":
        rows = write_csv_labels(photos, args.out, photos_root)
        print(f"wrote {rows} boxes to {args.out}")
    else:
        written = write_voc_folder(photos, args.out)
        print(f"wrote {written} labelled photos to {args.out}")
    return 0


def _dlib_describer() -> "FaceDescriber":
    """Describe faces with dlib's face descriptor network, ported to PyTorch.

    The only place where data_tools reaches into model/: at the command line's edge, so that
    the labelling code itself depends on the `FaceDescriber` protocol alone.
    """
    import numpy as np
    import torch

    from model.face_body import chips_to_tensor, load_dlib_face_body

    body = load_dlib_face_body().eval()

    class DlibDescriber:
        def describe(self, chips: "NDArray[np.uint8]") -> "NDArray[np.float32]":
            outputs = []
            with torch.inference_mode():
                for start in range(0, len(chips), 32):
                    outputs.append(body(chips_to_tensor(chips[start : start + 32])).numpy())
            return np.concatenate(outputs).astype(np.float32)

    return DlibDescriber()


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
