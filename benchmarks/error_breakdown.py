"""Break a bundle's misses on valid member chips into refused, misnamed and their face sizes.

Usage: python benchmarks/error_breakdown.py --bundle BUNDLE --prepared PREPARED

Chips are the labelled faces that detection found; faces it missed are counted by
`memberlens evaluate`, not here. Faces are named as the pipeline names them: the known-face
gate, the one-to-one assignment within each photo, then the context cuts among named members.
"""

import argparse
import sys
from pathlib import Path

from model.bundle import load_bundle
from model.data import read_prepared
from model.naming import name_faces_by_photo
from model.tuning import score_faces, split_faces

SMALL_FACE_PX = 35


def main() -> int:
    """Print the breakdown for the valid split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, required=True)
    args = parser.parse_args()

    bundle = load_bundle(args.bundle)
    prepared = read_prepared(args.prepared, bundle.roster)
    scores = score_faces(bundle.face_model, bundle.gallery, prepared, split_faces(prepared))
    thresholds = bundle.thresholds
    named = name_faces_by_photo(
        scores.photos, bundle.roster, scores.probabilities, scores.similarities, thresholds
    )
    is_known_alone = thresholds.is_known(bundle.roster, scores.probabilities, scores.similarities)

    truth = scores.truth
    is_member = truth >= 0
    widths = (scores.faces["x_max"] - scores.faces["x_min"]).to_numpy()
    refused = is_member & (named < 0)
    misnamed = is_member & (named >= 0) & (named != truth)
    by_context = is_member & ~is_known_alone & (named >= 0)
    lines = [
        f"valid member chips        {int(is_member.sum())}",
        f"named right               {int((is_member & (named == truth)).sum())}",
        f"refused as nobody known   {int(refused.sum())} "
        f"({int((refused & (widths < SMALL_FACE_PX)).sum())} under {SMALL_FACE_PX} px wide)",
        f"named as another member   {int(misnamed.sum())}",
        f"named only among members  {int(by_context.sum())} "
        f"(right {int((by_context & (named == truth)).sum())}; context cuts: "
        f"{thresholds.context.to_json() if thresholds.context else 'none'})",
        f"valid stranger chips      {int((~is_member).sum())}, "
        f"named as a member {int((named[~is_member] >= 0).sum())}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
