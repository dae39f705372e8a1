"""The built-in dataset layouts (ForenSynths, binary real/fake, GenImage, CIFAKE, CSV/JSONL manifest) and
`dfzoo data inspect`.

Layouts are ordinary :class:`~dfzoo.DatasetSpec` plugins: ``detect`` recognises a folder from a few folder
names and ``load`` reads it; :func:`dfzoo.load_dataset` asks them in descending ``priority``.
"""

from __future__ import annotations

import argparse
import json
import sys

from dfzoo import CommandSpec, DatasetSpec, hookimpl
from dfzoo.data import binary, layouts
from dfzoo.data.manifest import detect_manifest, load_manifest


@hookimpl
def dfzoo_datasets():
    """Each layout's summary is its loader's docstring and its params the loader's keyword defaults."""
    yield DatasetSpec(name="manifest", load=load_manifest, detect=detect_manifest, priority=30)
    yield DatasetSpec(name="forensynths", load=layouts.load_forensynths, detect=layouts.detect_forensynths, priority=20)
    yield DatasetSpec(name="binary", load=binary.load_binary, detect=binary.detect_binary, priority=25)
    yield DatasetSpec(name="genimage", load=layouts.load_genimage, detect=layouts.detect_genimage, priority=15)
    yield DatasetSpec(name="cifake", load=layouts.load_cifake, detect=layouts.detect_cifake, priority=10)


def _inspect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="dataset folder, CSV/JSONL manifest, or a named dataset")
    parser.add_argument("--layout", default=None, help="layout name (default: detect it)")
    parser.add_argument(
        "--decode",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="decode every image (default) or read headers only (--no-decode, fast)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--limit", type=int, default=50, help="files listed per section in text output")


def _inspect(args: argparse.Namespace) -> int:
    """Count, check and decode every image of a dataset; list duplicates by path and content."""
    from dfzoo.data.inspect import inspect_dataset, render_text

    report = inspect_dataset(args.path, layout=args.layout, decode=args.decode, progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(render_text(report, limit=args.limit), end="")
    return 0


@hookimpl
def dfzoo_commands():
    yield CommandSpec(name="data inspect", add_arguments=_inspect_arguments, run=_inspect)
