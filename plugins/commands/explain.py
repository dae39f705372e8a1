"""``dfzoo explain SAVED_DETECTOR IMAGES... --out DIR``: Grad-CAM overlays (PNG) for a saved detector."""

from __future__ import annotations

import argparse
import sys

from dfzoo import CommandSpec, hookimpl


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("detector", help="a saved detector folder (from `dfzoo fit ... --out DIR`)")
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--out", required=True, help="folder for the *_gradcam.png overlays")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")


def _run(args: argparse.Namespace) -> int:
    """Write Grad-CAM overlays (PNG) of a saved detector for images."""
    from pathlib import Path

    import dfzoo
    from dfzoo.detector import META_FILE, RunContext
    from dfzoo.explain import write_overlays

    if not (Path(args.detector) / META_FILE).exists():
        raise ValueError(
            f"{args.detector} is not a saved detector folder (no {META_FILE}); "
            "train one with `dfzoo fit NAME --dataset ... --out DIR`"
        )
    detector = dfzoo.load_fitted(args.detector)
    if not callable(getattr(detector, "explain", None)):
        raise ValueError(f"detector {detector.name} has no Grad-CAM explanation (explain())")
    detector.setup(RunContext(device=args.device, progress=False))
    samples = [s for path in args.paths for s in dfzoo.samples_from(path)]
    if not samples:
        raise ValueError(f"no image files found in {', '.join(args.paths)}")
    written = write_overlays(detector, samples, args.out)
    scores = detector.score(samples)
    for sample, path, score in zip(samples, written, scores, strict=True):
        if path is None:
            print(f"skipped {sample.display_name}: could not be decoded", file=sys.stderr)
        else:
            print(f"{path}\tscore={score:.4g}\t{sample.display_name}")
    done = sum(p is not None for p in written)
    print(f"wrote {done} overlay(s) to {args.out}", file=sys.stderr)
    return 0 if done else 1


@hookimpl
def dfzoo_commands():
    yield CommandSpec(name="explain", add_arguments=_arguments, run=_run)
