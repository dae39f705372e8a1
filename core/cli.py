"""The ``dfzoo`` command: every sub-command is a plugin (see ``dfzoo_commands``), so packages can add their own.

Failure is loud and short: any error of a command (a bad parameter or device, a missing or unwritable file, a
full disk, an undecodable input, a broken plugin) is one line ``dfzoo <command>: error: ...`` on stderr and
exit code 2; ``--debug`` (or ``DFZOO_DEBUG=1``) shows the traceback instead. Commands whose work produced
failed rows (``dfzoo run``) exit with 1. Commands check their output folders with :func:`writable_dir` /
:func:`writable_file` before any compute.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

from .registry import Registry, RegistryError, current_registry

MAIN_COMMAND = "run"  # the main job, named in the help a bare ``dfzoo`` prints (never started without asking)
DEBUG_ENV = "DFZOO_DEBUG"
EXIT_ERROR = 2  # the command could not do its work
EXIT_ROWS_FAILED = 1  # it did, but some results are errors (``dfzoo run`` without ``--keep-going``)


class NotWritableError(OSError):
    """An output path cannot be written; raised before any compute."""


EPILOG = """start here:
  dfzoo list                what is installed; --offline: only what runs on this machine now
  dfzoo info DETECTOR       one detector: its parameters, weights, and an example that runs offline
  dfzoo run --preset tiny   the whole pipeline on the tiny zoo (about two minutes on 2 CPU cores)
  dfzoo run                 the main job: the default benchmark and its leaderboard (an hour or more)
"""


class ParagraphHelpFormatter(argparse.HelpFormatter):
    """Re-wraps each paragraph of a command's description to the terminal, keeping the blank lines between
    them (argparse's default runs all paragraphs together)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = [" ".join(part.split()) for part in text.split("\n\n") if part.strip()]
        return "\n\n".join(textwrap.fill(p, width, initial_indent=indent, subsequent_indent=indent) for p in paragraphs)


def build_parser(registry: Registry) -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="dfzoo",
        description="A zoo of detectors for AI-generated images.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dfzoo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages (progress goes to stderr)")
    parser.add_argument("--debug", action="store_true", help=f"show tracebacks of errors (also {DEBUG_ENV}=1)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for entry in registry.entries("command"):
        spec = entry.spec
        words = spec.name.split(" ")
        if len(words) == 2 and words[0] not in groups:
            group = commands.add_parser(words[0], help=f"{words[0]} commands")
            groups[words[0]] = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        parent, name = (groups[words[0]], words[1]) if len(words) == 2 else (commands, spec.name)
        sub = parent.add_parser(
            name, help=spec.summary, description=spec.description, formatter_class=ParagraphHelpFormatter
        )
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show error tracebacks")
        sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug messages")
        spec.add_arguments(sub)
        sub.set_defaults(_command=spec)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script. Without a command it prints the help (exit 0): the main job,
    ``dfzoo run``, runs for an hour and starts only when asked. Logs and progress go to stderr."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:  # plugin problems (a duplicate among built-ins, a misspelled hook) surface here
        registry = current_registry()
        parser = build_parser(registry)
    except Exception as error:
        return fail("dfzoo", error, debug)
    args = parser.parse_args(argv)
    if args.verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    spec = getattr(args, "_command", None)
    if spec is None:
        parser.print_help()
        return 0
    try:
        return int(spec.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and a re-run resumes", file=sys.stderr)
        return 130
    except Exception as error:
        return fail(f"dfzoo {spec.name}", error, debug or args.debug)


def fail(prefix: str, error: Exception, debug: bool) -> int:
    """Print ``<prefix>: error: <one line>`` (or raise, with ``debug``) and return the error exit code."""
    if debug:
        raise error
    print(f"{prefix}: error: {error_line(error)}", file=sys.stderr)
    return EXIT_ERROR


def error_line(error: BaseException) -> str:
    """An exception as one readable line. Errors dfzoo raises on purpose (bad input, files, plugins) read as
    their message; anything else is named by type, with a pointer to ``--debug``."""
    from .data.decode import ImageDecodeError
    from .registry import UnknownNameError

    if isinstance(error, OSError) and error.strerror and error.filename:  # not "[Errno 28] ..."
        text = f"{error.strerror}: {error.filename}" + (f" -> {error.filename2}" if error.filename2 else "")
    elif isinstance(error, (OSError, ValueError, RegistryError, UnknownNameError, ImageDecodeError)):
        text = str(error) or type(error).__name__
    else:
        text = f"{type(error).__name__}: {error} (--debug shows the traceback)"
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def writable_dir(path: str | Path, what: str) -> Path:
    """Check that a folder can be created (if missing) and written, without creating it; a
    :class:`NotWritableError` naming ``what`` (e.g. ``--out``) otherwise. Call it before any compute."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:  # the nearest ancestor that exists
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is a file)"
        raise NotWritableError(f"{what} {path} is not a folder{where}")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".dfzoo-write-check-"):
            pass
    except OSError as error:
        raise NotWritableError(f"{what} {path} cannot be written ({existing}: {error.strerror or error})") from error
    return path


def writable_file(path: str | Path, what: str) -> Path:
    """Check that a file can be written (its folder writable, the file itself if it exists), before compute."""
    path = Path(path)
    if path.is_dir():
        raise NotWritableError(f"{what} {path} is a folder; give a file name")
    writable_dir(path.parent, what)
    if path.exists():
        try:
            with path.open("ab"):
                pass
        except OSError as error:
            raise NotWritableError(f"{what} {path} cannot be written: {error.strerror or error}") from error
    return path


if __name__ == "__main__":
    sys.exit(main())
