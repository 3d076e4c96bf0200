"""Per-member precision and recall as fastai metrics, and the same figures from arrays."""

import numpy as np
import torch
from fastai.learner import Learner, Metric
from numpy.typing import NDArray


class MemberRate(Metric):
    """Precision or recall of one member at probability 0.5, accumulated over an epoch."""

    def __init__(self, member_index: int, member: str, kind: str) -> None:
        """Track `kind` ("precision" or "recall") of the member at `member_index`."""
        if kind not in ("precision", "recall"):
            raise ValueError(f"kind must be precision or recall, got {kind!r}")
        self.member_index = member_index
        self.member = member
        self.kind = kind
        self.reset()

    def reset(self) -> None:
        """Start counting anew."""
        self.true_positives = 0
        self.false_positives = 0
        self.false_negatives = 0

    def accumulate(self, learn: Learner) -> None:
        """Count one batch."""
        predicted = torch.sigmoid(learn.pred[:, self.member_index].detach()) >= 0.5
        actual = learn.y[:, self.member_index].detach().bool()
        self.true_positives += int((predicted & actual).sum())
        self.false_positives += int((predicted & ~actual).sum())
        self.false_negatives += int((~predicted & actual).sum())

    @property
    def value(self) -> float | None:
        """Return the rate, or None when it is undefined (nothing predicted or present)."""
        wrong = self.false_positives if self.kind == "precision" else self.false_negatives
        total = self.true_positives + wrong
        return self.true_positives / total if total else None

    @property
    def name(self) -> str:
        """Return the column name in the training log."""
        return f"{self.kind}_{self.member}"


def member_metrics(roster: list[str]) -> list[Metric]:
    """Return precision and recall metrics for every member of a roster."""
    return [
        MemberRate(index, member, kind)
        for index, member in enumerate(roster)
        for kind in ("precision", "recall")
    ]


def precision_recall(
    predicted: NDArray[np.bool_], actual: NDArray[np.bool_], roster: list[str]
) -> dict[str, dict[str, float | None]]:
    """Return per-member precision, recall and F1 from (n, n_members) boolean arrays."""
    figures: dict[str, dict[str, float | None]] = {}
    for index, member in enumerate(roster):
        true_positives = int((predicted[:, index] & actual[:, index]).sum())
        predicted_count = int(predicted[:, index].sum())
        actual_count = int(actual[:, index].sum())
        precision = true_positives / predicted_count if predicted_count else None
        recall = true_positives / actual_count if actual_count else None
        f1 = None
        if precision is not None and recall is not None:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        figures[member] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": actual_count,
        }
    return figures
