"""Choose the fusion rule by measurement: tune image cuts on one valid set, score on another.

Both sets are made with `memberlens scene-photos --splits valid` from the valid group photos
(different seeds give different crops, collages and degradations), so no photo of either was
trained on. Each rule's image cuts are tuned on the first set under that rule, then all rules
are scored on the second:

- plain: a member no face names is added when their image score reaches their cut;
- gated: the same, only in photos with no face found or with a face named nobody;
- gated_capped: gated, adding at most as many members as faces named nobody (any number
  when no face was found), the highest scores first;
- lift: plain, and a face named nobody whose best member is within 0.2 of its face cut is named
  that member when the image gives them at least half their cut.

    python benchmarks/scene_fusion_rules.py --bundle bundles/scene-lite0-160 \\
        --tune prepared/scene-bts-tune --score prepared/scene-bts-eval --threads 1
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from data_tools.faces import MtcnnDetector
from model.bundle import load_bundle
from model.evaluate_scene import photo_groups, set_figures
from model.fusion import NEVER_IMAGE_CUT
from model.pipeline import Pipeline
from model.scene_tuning import SceneAnswers, answer_scene_photos, tune_image_cuts

GROUPS = ("all", "crops_1_to_4", "whole_clean", "whole_degraded", "collages", "strangers")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--tune", type=Path, required=True, help="scene photos to tune on")
    parser.add_argument("--score", type=Path, required=True, help="scene photos to score on")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stranger-budget", type=float, default=0.02)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    bundle = load_bundle(args.bundle)
    faces_only = dataclasses.replace(
        bundle, thresholds=dataclasses.replace(bundle.thresholds, image={})
    )
    pipeline = Pipeline(
        faces_only,
        MtcnnDetector(),
        max_upload_bytes=1 << 40,
        max_pixels=1 << 40,
        follow_thresholds_file=False,
    )
    tune = answer_scene_photos(pipeline, args.tune, "valid")
    score = answer_scene_photos(pipeline, args.score, "valid")

    figures: dict[str, Any] = {"face_only": _figures(score.face_named, score)}
    for rule in ("plain", "gated", "gated_capped", "lift"):
        is_open = _open(tune, rule)
        cuts = tune_image_cuts(
            bundle.roster, tune, stranger_budget=args.stranger_budget, is_open=is_open
        )
        cut_array = np.array([cuts[m] for m in bundle.roster], dtype=np.float32)
        predicted = _apply(score, rule, cut_array, bundle.thresholds.face, bundle.roster)
        figures[rule] = {"cuts": cuts, **_figures(predicted, score)}
    print(_table(figures))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2))
    return 0


def _open(answers: SceneAnswers, rule: str) -> NDArray[np.bool_]:
    if rule in ("gated", "gated_capped"):
        return np.asarray((answers.detected_faces == 0) | (answers.unnamed_faces > 0), dtype=bool)
    return np.ones(len(answers.rows), dtype=bool)


def _apply(
    answers: SceneAnswers,
    rule: str,
    cuts: NDArray[np.float32],
    face_cuts: dict[str, float],
    roster: list[str],
) -> NDArray[np.bool_]:
    candidates = (
        (answers.image_scores >= cuts[None, :])
        & (cuts[None, :] < NEVER_IMAGE_CUT)
        & ~answers.face_named
        & _open(answers, rule)[:, None]
    )
    if rule == "gated_capped":
        for row in range(len(candidates)):
            if answers.detected_faces[row] == 0:
                continue
            ranked = np.argsort(-np.where(candidates[row], answers.image_scores[row], -1.0))
            candidates[row, ranked[answers.unnamed_faces[row] :]] = False
    predicted = answers.face_named | candidates
    if rule == "lift":
        for row, result in enumerate(answers.results):
            for face in (result or {"faces": []})["faces"]:
                if face["member"] is not None or not face["candidates"]:
                    continue
                best = face["candidates"][0]
                index = roster.index(best["name"])
                if (
                    best["score"] >= face_cuts[best["name"]] - 0.2
                    and answers.image_scores[row, index] >= 0.5 * cuts[index]
                    and cuts[index] < NEVER_IMAGE_CUT
                ):
                    predicted[row, index] = True
    return predicted


def _figures(predicted: NDArray[np.bool_], answers: SceneAnswers) -> dict[str, Any]:
    groups = photo_groups(answers)
    return {
        name: set_figures(predicted[groups[name]], answers.targets[groups[name]]) for name in GROUPS
    }


def _table(figures: dict[str, Any]) -> str:
    rules = list(figures)
    lines = [f"{'photos':<16}{'figure':<16}" + "".join(f"{rule:>14}" for rule in rules)]
    for group in GROUPS:
        for figure in ("exact_set_rate", "member_f1", "photos_naming_anyone"):
            if group != "strangers" and figure == "photos_naming_anyone":
                continue
            cells = "".join(f"{figures[rule][group][figure]:>14.4f}" for rule in rules)
            photos = figures["face_only"][group]["photos"]
            lines.append(f"{group + f' ({photos})':<16}{figure:<16}{cells}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
