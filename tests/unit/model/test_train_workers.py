import importlib
import logging
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from data_tools.errors import TrainingError
from model.face_model import FaceModel
from model.train_workers import train_side_by_side, worker_count

from .conftest import ColourBody

# Spawned workers import what they run by module name, so the stand-in trainer lives in a
# module of its own on sys.path (which spawned processes inherit), not in this test file.
TRAINER_SOURCE = textwrap.dedent(
    """
    import logging
    import time

    import torch
    from torch import nn

    from model.face_model import FaceModel


    class MeanColour(nn.Module):
        def forward(self, crops):
            return crops.mean(dim=(2, 3))


    def train_one(seed):
        logging.getLogger("stand_in_trainer").info("trained", extra={"seed": seed})
        model = FaceModel(MeanColour(), 3, 2)
        with torch.no_grad():
            model.head[-1].bias.fill_(float(seed))
        return model


    def fail_on_three(seed):
        if seed == 3:
            raise ValueError("seed 3 cannot train")
        time.sleep(60)
        return train_one(seed)
    """
)


@pytest.fixture
def stand_in_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    (tmp_path / "stand_in_trainer.py").write_text(TRAINER_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("stand_in_trainer")
    sys.modules.pop("stand_in_trainer", None)


def _empty() -> FaceModel:
    return FaceModel(ColourBody(), 3, 2)


@pytest.mark.parametrize("workers", [1, 2])
def test_models_come_back_in_seed_order_with_their_weights(
    stand_in_trainer: ModuleType, workers: int
) -> None:
    models = train_side_by_side([3, 5], stand_in_trainer.train_one, _empty, workers=workers)

    biases = [float(model.head[-1].bias[0].detach()) for model in models]  # type: ignore[index]
    assert biases == [3.0, 5.0]


def test_worker_logs_reach_the_parent_tagged_with_their_seed(
    stand_in_trainer: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="stand_in_trainer"):
        train_side_by_side([3, 5], stand_in_trainer.train_one, _empty, workers=2)

    seeds = sorted(r.model_seed for r in caplog.records if r.name == "stand_in_trainer")
    assert seeds == [3, 5]


def test_a_failing_worker_stops_the_others_and_raises_in_the_parent(
    stand_in_trainer: ModuleType,
) -> None:
    started = time.perf_counter()

    with pytest.raises(TrainingError, match="seed 3"):
        train_side_by_side([3, 5], stand_in_trainer.fail_on_three, _empty, workers=2)

    # The other worker sleeps a minute before it would finish; it must have been stopped.
    assert time.perf_counter() - started < 45


def test_one_process_per_thread_and_never_more_than_models() -> None:
    assert worker_count(2, threads=2) == 2
    assert worker_count(3, threads=2) == 2
    assert worker_count(1, threads=8) == 1
    assert worker_count(2, threads=1) == 1
