"""Draw the scene evaluation's figures as PNG files (matplotlib, no display needed)."""

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
# The backend is chosen before pyplot loads, so that no display is ever needed.
import matplotlib.pyplot as plt
import numpy as np

logger = logging.getLogger(__name__)

_MAIN_VARIANTS = ("face_only", "scene_only", "fused")
_GROUPS = (
    "all",
    "crops_1",
    "crops_2",
    "crops_3",
    "crops_4",
    "crops_5_plus",
    "whole_clean",
    "whole_degraded",
    "collages",
)


def write_plots(report: dict[str, Any], roster: list[str], plots_dir: Path) -> list[Path]:
    """Write the per-member, per-group, confusion and threshold plots; return their paths."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    variants = [name for name in _MAIN_VARIANTS if name in report["variants"]]
    paths = [
        _per_member(report, roster, variants, plots_dir / "per_member.png"),
        _exact_set_by_group(report, variants, plots_dir / "exact_set_by_group.png"),
        _confusion(report, plots_dir / "face_confusion.png"),
    ]
    if report.get("has_scene_model"):
        paths.append(_f1_by_threshold(report, roster, plots_dir / "f1_by_threshold.png"))
    logger.info("plots written", extra={"plots": [str(path) for path in paths]})
    return paths


def _per_member(report: dict[str, Any], roster: list[str], variants: list[str], path: Path) -> Path:
    figure, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    width = 0.8 / len(variants)
    positions = np.arange(len(roster))
    for axis, figure_name in zip(axes, ("precision", "recall", "f1"), strict=True):
        for offset, variant in enumerate(variants):
            per_member = report["variants"][variant]["per_member"]
            values = [per_member[member][figure_name] or 0.0 for member in roster]
            axis.bar(positions + offset * width, values, width, label=variant)
        axis.set_xticks(positions + width * (len(variants) - 1) / 2, roster, rotation=45)
        axis.set_title(f"member {figure_name}")
        axis.set_ylim(0, 1.05)
    axes[0].legend(loc="lower left")
    return _save(figure, path)


def _exact_set_by_group(report: dict[str, Any], variants: list[str], path: Path) -> Path:
    figure, axis = plt.subplots(figsize=(13, 4))
    width = 0.8 / len(variants)
    positions = np.arange(len(_GROUPS))
    for offset, variant in enumerate(variants):
        groups = report["variants"][variant]["by_group"]
        values = [groups.get(group, {}).get("exact_set_rate") or 0.0 for group in _GROUPS]
        axis.bar(positions + offset * width, values, width, label=variant)
    labels = [
        f"{group}\n({report['variants'][variants[0]]['by_group'].get(group, {}).get('photos', 0)})"
        for group in _GROUPS
    ]
    axis.set_xticks(positions + width * (len(variants) - 1) / 2, labels, fontsize=8)
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("exact-set rate")
    axis.set_title("exact-set rate by kind of photo (photos in brackets)")
    axis.legend()
    return _save(figure, path)


def _confusion(report: dict[str, Any], path: Path) -> Path:
    confusion = report["faces"]["confusion"]
    counts = np.array(confusion["counts"])
    figure, axis = plt.subplots(figsize=(8, 6.5))
    image = axis.imshow(np.log1p(counts), cmap="Blues")
    for (row, column), count in np.ndenumerate(counts):
        if count:
            axis.text(column, row, str(count), ha="center", va="center", fontsize=8)
    axis.set_xticks(range(len(confusion["columns"])), confusion["columns"], rotation=45)
    axis.set_yticks(range(len(confusion["rows"])), confusion["rows"])
    axis.set_xlabel("answer")
    axis.set_ylabel("truth")
    accuracy = report["faces"]["per_face_accuracy"]
    axis.set_title(f"faces of the scene photos (per-face accuracy {accuracy})")
    figure.colorbar(image, ax=axis, label="log(1 + faces)")
    return _save(figure, path)


def _f1_by_threshold(report: dict[str, Any], roster: list[str], path: Path) -> Path:
    curves = report["f1_by_threshold"]
    columns = 4
    rows = (len(roster) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis, member in zip(axes.flat, roster, strict=False):
        axis.plot(curves["thresholds"], curves[member]["scene_only"], label="scene only")
        axis.plot(curves["thresholds"], curves[member]["fused"], label="fused")
        cut = report["image_thresholds"].get(member)
        if cut is not None:
            axis.axvline(cut, color="grey", linestyle="--", label=f"tuned {cut:.2f}")
        axis.set_title(member)
        axis.set_xlabel("image threshold")
        axis.set_ylabel("member F1")
        axis.set_ylim(0, 1.02)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(roster) :]:
        axis.axis("off")
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
