"""The zoo build's child process: started with the pinned numeric environment, which takes effect only
before torch is imported, and reporting a failure back as one message.

The child inherits stderr, so its progress bar shows as usual; it writes nothing else unless it fails, and
then a JSON file with the message and the traceback, which the parent turns into one ``ZooBuildError``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import traceback
from dataclasses import asdict
from pathlib import Path

from .build import ZooBuildError, build_here
from .numerics import Numerics

MODULE = "dfzoo.plugins.datasets._genzoo"  # ``python -m`` runs its __main__, i.e. :func:`main`


def run_build(folder: Path, preset: str, seed: int, numerics: Numerics, progress: bool) -> None:
    """Build the zoo into ``folder`` in a fresh Python process started with ``numerics.environment()``."""
    error_file = folder.with_name(folder.name + ".error.json")
    error_file.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        MODULE,
        "--out",
        str(folder),
        "--preset",
        preset,
        "--seed",
        str(seed),
        "--numerics",
        json.dumps(asdict(numerics)),
        "--error-file",
        str(error_file),
    ]
    if not progress:
        command.append("--quiet")
    returncode = subprocess.run(
        command, env={**os.environ, **numerics.environment()}, stdin=subprocess.DEVNULL, check=False
    ).returncode
    if returncode == 0:
        return
    where = f"zoo build ({preset}, seed {seed})"
    if error_file.exists():
        message = json.loads(error_file.read_text())["message"]
        raise ZooBuildError(f"{where} failed: {message} (traceback: {error_file})")
    if returncode < 0:
        name = signal.Signals(-returncode).name
        raise ZooBuildError(
            f"{where}: its build process was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
        )
    raise ZooBuildError(f"{where}: its build process exited with status {returncode} and no error report")


def main(argv: list[str] | None = None) -> int:
    """Child side: build one zoo into ``--out``; on failure write ``--error-file`` and return 1."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}", description="Build the zoo in this process (internal: use `dfzoo data build-zoo`)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--numerics", required=True, help="Numerics fields as JSON")
    parser.add_argument("--error-file", type=Path, required=True)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        build_here(args.out, args.preset, args.seed, Numerics(**json.loads(args.numerics)), not args.quiet)
    except Exception as error:
        message = str(error) if isinstance(error, ZooBuildError) else f"{type(error).__name__}: {error}"
        args.error_file.write_text(json.dumps({"message": message, "traceback": traceback.format_exc()}))
        return 1
    return 0
