"""Train the face models of an ensemble side by side, one process per core.

Training one face model keeps about one core busy: fastai's loop, augmentation and the small
batches leave a second torch thread mostly waiting. Two models trained one after the other
take twice as long; two processes of one thread each take about as long as one model: on
this 2-core machine, two models of 8 epochs trained at once took 353 and 358 s, about 45 s
an epoch, as one model alone takes. Each process trains with its own seed and hands its
weights back through a safetensors file; its log records, tagged with the seed, reach the
parent's loggers through a queue.
"""

import logging
import logging.handlers
import multiprocessing
import multiprocessing.connection
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from data_tools.errors import TrainingError
from model.bundle import plain_tensors
from model.face_model import FaceModel

logger = logging.getLogger(__name__)

# Trains one model in the current process: (seed) -> FaceModel. Picklable for the workers.
TrainOne = Callable[[int], FaceModel]
# Builds a model with untrained weights of the right shape, to load trained weights into.
BuildEmpty = Callable[[], FaceModel]


def worker_count(n_models: int, threads: int | None = None) -> int:
    """Return how many processes train `n_models` models at once.

    One per torch thread the run may use (`MEMBERLENS_TORCH_THREADS`, or one per core), and
    never more than there are models.
    """
    available = threads if threads is not None else torch.get_num_threads()
    return max(1, min(n_models, available))


def train_side_by_side(
    seeds: list[int], train_one: TrainOne, build_empty: BuildEmpty, *, workers: int
) -> list[FaceModel]:
    """Train one model per seed, `workers` at a time, and return them in the order of `seeds`.

    With one worker the models are trained here, one after the other. Otherwise each runs in
    a spawned process of `torch threads // workers` threads; `train_one` must then be
    picklable (a module-level function, or a `functools.partial` of one).

    Raises:
        TrainingError: a worker failed; the others are stopped, and the worker's error is in
            the log.
    """
    if workers <= 1:
        return [train_one(seed) for seed in seeds]
    threads = max(1, torch.get_num_threads() // workers)
    context = multiprocessing.get_context("spawn")
    models: list[FaceModel] = []
    with (
        tempfile.TemporaryDirectory(prefix="memberlens-models-") as folder,
        _forwarded_logs(context) as log_queue,
    ):
        for start in range(0, len(seeds), workers):
            batch = seeds[start : start + workers]
            paths = [Path(folder) / f"seed-{seed}.safetensors" for seed in batch]
            processes = [
                context.Process(
                    target=_train_in_worker,
                    args=(train_one, seed, threads, path, log_queue),
                    name=f"memberlens-train-seed-{seed}",
                )
                for seed, path in zip(batch, paths, strict=True)
            ]
            _run_all(processes, batch)
            for path in paths:
                model = build_empty()
                model.load_state_dict(load_file(str(path)), strict=True)
                models.append(model)
    return models


def _run_all(processes: list[SpawnProcess], seeds: list[int]) -> None:
    """Start the processes and wait for all; at the first failure stop the rest and raise."""
    for process in processes:
        process.start()
    try:
        running = list(processes)
        while running:
            multiprocessing.connection.wait([process.sentinel for process in running])
            for process, seed in zip(processes, seeds, strict=True):
                if process in running and not process.is_alive():
                    running.remove(process)
                    if process.exitcode != 0:
                        raise TrainingError(
                            f"training the face model of seed {seed} failed (exit code "
                            f"{process.exitcode}); its error is in the log above"
                        )
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


@contextmanager
def _forwarded_logs(context: SpawnContext) -> Iterator[Any]:
    """Yield a queue whose log records are handled by the parent's loggers of the same name."""
    log_queue = context.Queue()
    listener = logging.handlers.QueueListener(log_queue, _HandleByName())
    listener.start()
    try:
        yield log_queue
    finally:
        listener.stop()
        log_queue.close()


class _HandleByName(logging.Handler):
    """Hand a record from a worker to the parent's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        target = logging.getLogger(record.name)
        if target.isEnabledFor(record.levelno):
            target.handle(record)


class _TagSeed(logging.Filter):
    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed

    def filter(self, record: logging.LogRecord) -> bool:
        record.model_seed = self.seed
        return True


def _train_in_worker(
    train_one: TrainOne, seed: int, threads: int, weights_path: Path, log_queue: Any
) -> None:
    handler = logging.handlers.QueueHandler(log_queue)
    handler.addFilter(_TagSeed(seed))
    root = logging.getLogger()
    root.handlers = [handler]
    # The parent decides what is shown; the worker passes everything from INFO up.
    root.setLevel(logging.INFO)
    torch.set_num_threads(threads)
    try:
        model = train_one(seed)
        save_file(plain_tensors(model), str(weights_path))
    except BaseException:
        logger.exception("face model training failed", extra={"model_seed": seed})
        raise SystemExit(1) from None
