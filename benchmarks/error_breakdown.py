"""Break a bundle's misses on valid member chips into refused, misnamed and their face sizes.

Usage: python benchmarks/error_breakdown.py --bundle BUNDLE --prepared PREPARED

Chips are the labelled faces that detection found; faces it missed are counted by
`memberlens evaluate`, not here. Faces are named as the pipeline names them: the known-face
gate, then the one-to-one assignment within each photo.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from model.bundle import load_bundle
from model.data import VALID, read_prepared, targets_of
from model.train import _describe_chips, name_faces_by_photo

SMALL_FACE_PX = 35


def main() -> int:
    """Print the breakdown for the valid split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, required=True)
    args = parser.parse_args()

    bundle = load_bundle(args.bundle)
    prepared = read_prepared(args.prepared, bundle.roster)
    faces = prepared.faces[prepared.faces["split"] == VALID]
    descriptors, probabilities = _describe_chips(bundle.face_model, prepared, faces)
    similarities = bundle.gallery.similarities(descriptors)
    targets = targets_of(faces, bundle.roster)
    is_known = bundle.thresholds.is_known(bundle.roster, probabilities, similarities)
    named = name_faces_by_photo(faces["photo"].to_numpy(), probabilities, is_known)

    is_member = targets.any(axis=1)
    truth = np.where(is_member, targets.argmax(axis=1), -1)
    widths = (faces["x_max"] - faces["x_min"]).to_numpy()
    refused = is_member & ~is_known
    misnamed = is_member & is_known & (named != truth)
    lines = [
        f"valid member chips        {int(is_member.sum())}",
        f"named right               {int((is_member & (named == truth)).sum())}",
        f"refused as nobody known   {int(refused.sum())} "
        f"({int((refused & (widths < SMALL_FACE_PX)).sum())} under {SMALL_FACE_PX} px wide)",
        f"named as another member   {int(misnamed.sum())}",
        f"valid stranger chips      {int((~is_member).sum())}, "
        f"named as a member {int((named[~is_member] >= 0).sum())}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
