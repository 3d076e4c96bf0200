"""Assemble the `memberlens` command line from the subcommands each layer owns."""

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from data_tools import cli as data_tools_cli
from data_tools.errors import MemberlensError
from model import cli as model_cli
from service import serve_cli
from service.logs import configure_logging
from service.settings import Settings, load_settings

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every layer's subcommands."""
    parser = argparse.ArgumentParser(
        prog="memberlens",
        description="Name every member of a group in a photo, with a box around each face.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data_tools_cli.register(subparsers)
    model_cli.register(subparsers)
    serve_cli.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `memberlens` subcommand and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings: Settings = load_settings()
    except ValidationError as err:
        print(f"memberlens: error: invalid MEMBERLENS_* settings: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, verbose=args.verbose)

    try:
        status: int = args.handler(args, settings)
    except MemberlensError as err:
        logger.debug("command failed", exc_info=True)
        print(f"memberlens {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
