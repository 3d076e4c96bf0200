"""Measure what averaging face bundles trained with different seeds would give.

Run: python benchmarks/seed_ensemble.py --bundles bundles/bts bundles/bts-seed1 \\
         --prepared prepared/bts [--stranger-cost 2]
Every bundle must have been trained on the same prepared folder (same split). The ensemble
averages the bundles' member probabilities and their gallery similarities; its per-member cuts
are tuned on the valid split as `memberlens train` tunes them; then the pipeline's own code
answers the valid group photos and the test-split stranger photos, scored as `memberlens
evaluate` scores them. Each bundle is also scored alone, with its own cuts, in the same run.
A probe for the next step, not part of the product: nothing here is written to a bundle.
"""

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from data_tools.faces import MtcnnDetector
from model.bundle import Bundle, load_bundle
from model.data import VALID, read_prepared, targets_of
from model.evaluate import (
    _group_photos,
    _identify,
    _stranger_figures,
    _stranger_photos,
    score_photo,
    summarise_scores,
)
from model.gallery import Gallery
from model.pipeline import Pipeline
from model.thresholds import save_thresholds, tune_thresholds
from model.train import _describe_chips

logger = logging.getLogger(__name__)

_NO_BYTE_LIMIT = 1 << 40
_MAX_PIXELS = 50_000_000
_EPSILON = 1e-6


class EnsembleModel(nn.Module):
    """Several face models as one: descriptors side by side, probabilities averaged."""

    def __init__(self, models: list[nn.Module]) -> None:
        """Wrap the face models of bundles with the same roster."""
        super().__init__()
        self.models = nn.ModuleList(models)

    def describe(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the concatenated descriptors and the logits of the mean probabilities."""
        answers = [model.describe(crops) for model in self.models]
        descriptors = torch.cat([descriptor for descriptor, _ in answers], dim=1)
        probabilities = torch.stack([torch.sigmoid(logits) for _, logits in answers]).mean(0)
        return descriptors, torch.logit(probabilities, eps=_EPSILON)


class EnsembleGallery:
    """Several galleries as one: each scores its own slice of the descriptors; mean of them."""

    def __init__(self, galleries: list[Gallery], sizes: list[int]) -> None:
        """`sizes` are the descriptor widths of the models, in the ensemble's order."""
        self.galleries = galleries
        self.bounds = np.cumsum([0, *sizes])

    def similarities(self, raw_descriptors: NDArray[np.float32]) -> NDArray[np.float32]:
        """Return (n_faces, n_members): the mean of each gallery's similarities."""
        parts = [
            gallery.similarities(raw_descriptors[:, start:end])
            for gallery, start, end in zip(
                self.galleries, self.bounds[:-1], self.bounds[1:], strict=True
            )
        ]
        mean: NDArray[np.float32] = np.mean(parts, axis=0).astype(np.float32)
        return mean


def main() -> None:
    """Tune and score the ensemble and each bundle alone; print and return the figures."""
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    bundles = [load_bundle(path) for path in args.bundles]
    roster = bundles[0].roster
    if any(bundle.roster != roster for bundle in bundles):
        raise SystemExit("the bundles have different rosters; an ensemble needs one roster")

    figures: dict[str, Any] = {}
    for bundle in bundles:
        figures[bundle.path.name] = _score(bundle, args.prepared)
    figures["ensemble"] = _score(
        _ensemble(bundles, args.prepared, args.stranger_cost), args.prepared
    )
    print(json.dumps(figures, indent=2))


def _ensemble(bundles: list[Bundle], prepared_dir: Path, stranger_cost: float) -> Bundle:
    model = EnsembleModel([bundle.face_model for bundle in bundles])
    sizes = [int(bundle.gallery.descriptors.shape[1]) for bundle in bundles]
    gallery = EnsembleGallery([bundle.gallery for bundle in bundles], sizes)
    prepared = read_prepared(prepared_dir, bundles[0].roster)
    valid = prepared.faces[prepared.faces["split"] == VALID]
    descriptors, probabilities = _describe_chips(model, prepared, valid)  # type: ignore[arg-type]
    thresholds = tune_thresholds(
        bundles[0].roster,
        probabilities,
        gallery.similarities(descriptors),
        np.asarray(targets_of(valid, bundles[0].roster).any(axis=1), dtype=bool),
        stranger_cost=stranger_cost,
    )
    folder = Path(tempfile.mkdtemp(prefix="seed-ensemble-"))
    save_thresholds(folder, thresholds)
    return Bundle(
        path=folder,
        manifest={"name": "seed-ensemble"},
        roster=bundles[0].roster,
        face_model=model,  # type: ignore[arg-type]
        gallery=gallery,  # type: ignore[arg-type]
        thresholds=thresholds,
    )


def _score(bundle: Bundle, prepared_dir: Path) -> dict[str, Any]:
    pipeline = Pipeline(
        bundle, MtcnnDetector(), max_upload_bytes=_NO_BYTE_LIMIT, max_pixels=_MAX_PIXELS
    )
    scores = []
    for path, labelled in _group_photos(prepared_dir, VALID):
        result = _identify(pipeline, path)
        if result is not None:
            scores.append(score_photo(labelled, result))
    summary = summarise_scores(scores)
    strangers = _stranger_figures(pipeline, _stranger_photos(prepared_dir, "test"))
    return {
        "per_face_accuracy": summary.get("per_face_accuracy"),
        "member_set_f1": summary.get("member_set", {}).get("f1"),
        "exact_set_rate": summary.get("exact_set_rate"),
        "stranger_faces_named": f"{strangers['faces_named']} / {strangers['faces']}",
        "share_stranger_faces_named": strangers["share_faces_named"],
    }


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=Path, nargs="+", required=True, help="face bundles")
    parser.add_argument("--prepared", type=Path, required=True, help="their prepared folder")
    parser.add_argument("--stranger-cost", type=float, default=2.0, help="as in `train`")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    if len(args.bundles) < 2:
        parser.error("an ensemble needs at least two bundles")
    return args


if __name__ == "__main__":
    sys.exit(main())
