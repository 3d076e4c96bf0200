"""Command-line options shared by the subcommands that train a model with fastai."""

import argparse
from typing import Any


def add_fit_arguments(parser: argparse.ArgumentParser, *, epochs: int, body_lr: float) -> None:
    """Add the bundle name, seed, batch size, epochs, learning rates and weight decay.

    Args:
        parser: the subcommand's parser.
        epochs: the default count of epochs with the body unfrozen.
        body_lr: the default learning rate of the unfrozen body.
    """
    parser.add_argument("--name", help="bundle name reported by answers (default: folder-date)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--head-epochs", type=int, default=2, help="epochs with the body frozen")
    parser.add_argument("--epochs", type=int, default=epochs, help="epochs with the body unfrozen")
    parser.add_argument("--head-lr", type=float, default=3e-3)
    parser.add_argument("--body-lr", type=float, default=body_lr)
    parser.add_argument("--weight-decay", type=float, default=0.01)


def fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the options `add_fit_arguments` added, named as the training configs name them."""
    return {
        "bundle_name": args.name,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "head_epochs": args.head_epochs,
        "head_lr": args.head_lr,
        "epochs": args.epochs,
        "body_lr": args.body_lr,
        "weight_decay": args.weight_decay,
    }


def set_torch_threads(threads: int) -> None:
    """Apply MEMBERLENS_TORCH_THREADS; on a shared machine one thread can beat two."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
