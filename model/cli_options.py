"""Command-line options shared by the subcommands that train a model with fastai."""

import argparse


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
