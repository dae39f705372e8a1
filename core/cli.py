"""The ``dfzoo`` command: every sub-command is a plugin (see ``dfzoo_commands``), so packages can add their own."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .registry import Registry, current_registry

DEFAULT_COMMAND = "run"


def build_parser(registry: Registry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfzoo", description="A zoo of detectors for AI-generated images.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for entry in registry.entries("command"):
        spec = entry.spec
        words = spec.name.split(" ")
        if len(words) == 2:
            if words[0] not in groups:
                group = commands.add_parser(words[0], help=f"{words[0]} commands")
                groups[words[0]] = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            sub = groups[words[0]].add_parser(words[1], help=spec.summary, description=spec.summary)
        else:
            sub = commands.add_parser(spec.name, help=spec.summary, description=spec.summary)
        spec.add_arguments(sub)
        sub.set_defaults(_command=spec)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script. With no command, runs the default benchmark (``dfzoo run``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    registry = current_registry()
    parser = build_parser(registry)
    if not [a for a in argv if not a.startswith("-")] and "-h" not in argv and "--help" not in argv:
        if DEFAULT_COMMAND in registry.names("command"):
            argv = [*argv, DEFAULT_COMMAND]
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    for problem in registry.problems:
        print(f"warning: plugin {problem.plugin} skipped: {problem.error}", file=sys.stderr)
    spec = getattr(args, "_command", None)
    if spec is None:
        parser.print_help()
        return 2
    try:
        return int(spec.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and a re-run resumes", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as error:
        if args.verbose:
            raise
        print(f"dfzoo {spec.name}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
