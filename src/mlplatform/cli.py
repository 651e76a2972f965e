"""`mlplatform` command line: one entry for the Makefile, the entrypoints and users.

Each command module registers its own subcommands through `register(subparsers)`,
so this file only lists them. Settings are read once per command, in the command.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from mlplatform.commands import core, demo, monitoring, pipelines, serving
from mlplatform.errors import PlatformError

COMMAND_MODULES = (core, demo, pipelines, serving, monitoring)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlplatform", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except PlatformError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValidationError as err:  # settings, e.g. dev secrets in production
        # Only the messages: the full error would echo the input, secrets included.
        reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        print(f"error: invalid settings: {reasons}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
