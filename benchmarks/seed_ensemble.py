"""Join face bundles trained with different seeds into one ensemble bundle, without retraining.

Run: python benchmarks/seed_ensemble.py --bundles bundles/a bundles/b --prepared prepared/bts \\
         --out bundles/a-b [--stranger-cost 2]
then score it as any bundle: memberlens evaluate --bundle bundles/a-b --prepared prepared/bts

Every bundle must have been trained on the same prepared folder (same split). The result is
what `memberlens train --models N` writes when its seeds are those of the bundles: the face
models joined (`FaceEnsemble`), a gallery of the training faces described by all of them, and
cuts tuned on the valid split as training tunes them (a scene model, if any, is left out). It
lets seeds be combined and compared after the fact, without retraining.
"""

import argparse
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from model.bundle import load_bundle, save_bundle
from model.data import TRAIN, read_prepared
from model.face_model import FaceEnsemble, FaceModel
from model.train import build_gallery, valid_metrics
from model.tuning import score_faces, split_faces, tune_cuts


def main() -> int:
    """Write the ensemble bundle and print where it is."""
    args = _parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    bundles = [load_bundle(path) for path in args.bundles]
    roster = bundles[0].roster
    if any(bundle.roster != roster for bundle in bundles):
        raise SystemExit("the bundles have different rosters; an ensemble needs one roster")
    models: list[FaceModel] = []
    for bundle in bundles:
        if isinstance(bundle.face_model, FaceEnsemble):
            raise SystemExit(f"{bundle.path} is an ensemble already; join single-model bundles")
        models.append(bundle.face_model)

    ensemble = FaceEnsemble(models)
    prepared = read_prepared(args.prepared, roster)
    gallery = build_gallery(ensemble, prepared, split_faces(prepared, TRAIN))
    scores = score_faces(ensemble, gallery, prepared, split_faces(prepared))
    thresholds = tune_cuts(roster, scores, stranger_cost=args.stranger_cost)
    first = bundles[0].manifest
    manifest = {
        "name": args.out.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "roster": roster,
        "face_model": {
            **first.get("face_model", {}),
            "models": len(models),
            "seeds": [_seed_of(bundle.manifest) for bundle in bundles],
        },
        "detector": first.get("detector"),
        "training": {**first.get("training", {}), "joined_from": [str(p) for p in args.bundles]},
        "metrics": valid_metrics(roster, scores, thresholds),
        "versions": first.get("versions"),
    }
    save_bundle(
        args.out, manifest=manifest, face_model=ensemble, gallery=gallery, thresholds=thresholds
    )
    print(f"ensemble of {len(models)} face models written to {args.out}")
    return 0


def _seed_of(manifest: dict[str, Any]) -> Any:
    return manifest.get("training", {}).get("config", {}).get("seed")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=Path, nargs="+", required=True, help="face bundles")
    parser.add_argument("--prepared", type=Path, required=True, help="their prepared folder")
    parser.add_argument("--out", type=Path, required=True, help="ensemble bundle to write")
    parser.add_argument("--stranger-cost", type=float, default=2.0, help="as in `train`")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    if len(args.bundles) < 2:
        parser.error("an ensemble needs at least two bundles")
    return args


if __name__ == "__main__":
    sys.exit(main())
