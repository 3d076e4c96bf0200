"""Register the data subcommands of `memberlens`: each module owns the parser of its command."""

import argparse

from data_tools import collect_cli, prepare_cli, scene_photos_cli


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the data_tools subcommands to the `memberlens` parser."""
    prepare_cli.register(subparsers)
    collect_cli.register(subparsers)
    scene_photos_cli.register(subparsers)
