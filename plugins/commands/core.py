"""Core sub-commands: ``list``, ``weights``, ``fit`` and ``predict``."""

from __future__ import annotations

import argparse
import csv
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from dfzoo import CommandSpec, hookimpl


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``--param key=value`` flags, typed as ``dfzoo run`` types them (TOML values; the detector's spec reads
    ``none`` as None where the parameter allows None)."""
    from dfzoo.benchmark.protocol import parse_params as parse

    return parse(pairs or [])


# -- list ------------------------------------------------------------------------------------------------
def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "kind",
        nargs="?",
        choices=["detectors", "datasets", "backbones", "weights", "perturbations", "commands"],
        help="only this kind",
    )


def _list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from dfzoo.registry import current_registry
    from dfzoo.weights import can_resolve

    registry = current_registry()
    resolves = {name: can_resolve(registry.weights(name)) for name in registry.names("weights")}

    def weights_state(names: list[str]) -> str:
        if not names:
            return "none needed"
        return ", ".join(f"{n} ({'ok' if resolves.get(n) else 'missing'})" for n in names)

    tables = {
        "detectors": (
            ["detector", "trainable", "default weights here", "summary", "plugin"],
            [
                [
                    e.spec.name,
                    "yes" if e.spec.trainable else "no",
                    weights_state(registry.weights_needed(e.spec.name)),
                    e.spec.summary,
                    e.provider,
                ]
                for e in registry.entries("detector")
            ],
        ),
        "datasets": (
            ["dataset", "needs path", "summary", "plugin"],
            [
                [e.spec.name, "yes" if e.spec.needs_root else "no", e.spec.summary, e.provider]
                for e in registry.entries("dataset")
            ],
        ),
        "backbones": (
            ["backbone", "weights here", "dim", "summary"],
            [
                [
                    e.spec.name,
                    weights_state([e.spec.weights] if e.spec.weights else []),
                    e.spec.feature_dim or "?",
                    e.spec.summary,
                ]
                for e in registry.entries("backbone")
            ],
        ),
        "weights": (
            ["weights", "resolves offline", "library", "source", "summary"],
            [
                [e.spec.name, "yes" if resolves[e.spec.name] else "no", e.spec.library, e.spec.source, e.spec.summary]
                for e in registry.entries("weights")
            ],
        ),
        "perturbations": (
            ["perturbation", "defaults", "summary"],
            [
                [e.spec.name, ", ".join(f"{k}={v}" for k, v in e.spec.params.items()), e.spec.summary]
                for e in registry.entries("perturbation")
            ],
        ),
        "commands": (
            ["command", "summary", "plugin"],
            [[e.spec.name, e.spec.summary, e.provider] for e in registry.entries("command")],
        ),
    }
    for kind, (headers, rows) in tables.items():
        if args.kind and args.kind != kind:
            continue
        print(f"\n## {kind}\n")
        print(tabulate(rows, headers=headers, tablefmt="github", maxcolwidths=[None, None, 40, 60, 40]))
    if registry.problems and not args.kind:
        print("\n## plugins skipped\n")
        print(
            tabulate([[p.plugin, p.error] for p in registry.problems], headers=["plugin", "error"], tablefmt="github")
        )
    return 0


# -- weights ---------------------------------------------------------------------------------------------
def _weights_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="one weights name (default: all)")
    parser.add_argument("--path", help="an explicit file or folder to use for NAME")
    parser.add_argument("--fetch", action="store_true", help="download NAME where the network allows")


def _weights(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from dfzoo.paths import weights_dir
    from dfzoo.registry import current_registry
    from dfzoo.weights import WeightsNotFound, downloads_off_reason, hub_unreachable_reason, resolve

    registry = current_registry()
    names = [args.name] if args.name else registry.names("weights")
    rows, failed = [], 0
    for name in names:
        spec = registry.weights(name)
        try:
            found = resolve(spec, args.path if args.name else None, allow_download=args.fetch)
            rows.append([name, found.source, str(found.path), found.sha256[:16]])
        except WeightsNotFound as error:
            failed += 1
            rows.append([name, "missing", str(error).splitlines()[1].strip(), ""])
            if args.name:
                print(error, file=sys.stderr)
    off = hub_unreachable_reason() if args.fetch else downloads_off_reason()
    downloads = f"off: {off}" if off else "on (the model hub answers; `dfzoo weights NAME --fetch` downloads)"
    print(f"weights folder: {weights_dir()}  (DFZOO_WEIGHTS_DIR)\ndownloads: {downloads}\n")
    print(tabulate(rows, headers=["weights", "found by", "path", "sha256"], tablefmt="github"))
    return 1 if args.name and failed else 0


# -- fit and predict -------------------------------------------------------------------------------------
def _fit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("detector", help="detector name (see `dfzoo list detectors`)")
    parser.add_argument("--dataset", required=True, help="a dataset folder, manifest, or name (e.g. zoo)")
    parser.add_argument("--layout", help="force a layout instead of detecting it")
    parser.add_argument("--train", help="comma-separated generators to train on (default: all)")
    parser.add_argument("--split", default="train", help="dataset split to train on when it has splits")
    parser.add_argument("--param", action="append", help="detector parameter key=value (repeatable)")
    parser.add_argument("--out", required=True, help="folder to save the fitted detector in")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")
    parser.add_argument("--seed", type=int, default=0)


def _fit(args: argparse.Namespace) -> int:
    import dfzoo
    from dfzoo.cli import writable_dir
    from dfzoo.detector import RunContext
    from dfzoo.device import pick_device

    pick_device(args.device)  # everything that can be checked is, before the dataset is read
    writable_dir(args.out, "--out")
    detector = dfzoo.load_detector(args.detector, **parse_params(args.param))
    dataset = dfzoo.load_dataset(args.dataset, layout=args.layout)
    wanted = set(args.train.split(",")) if args.train else None
    samples = [
        s
        for s in dataset.samples
        if (wanted is None or s.generator in wanted or (s.label == 0 and s.generator == "real"))
        and (not s.split or s.split == args.split)
    ]
    if not samples:
        raise ValueError(f"no training samples in {args.dataset} for generators {args.train} split {args.split}")
    detector.setup(RunContext(seed=args.seed, device=args.device, workdir=Path(args.out) / "work"))
    detector.fit(samples)
    folder = detector.save(args.out)
    print(f"fitted {args.detector} on {len(samples)} images; saved to {folder}")
    return 0


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("detector", help="a saved detector folder, or the name of a training-free detector")
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--out", help="CSV file to write (default: standard output)")
    parser.add_argument("--param", action="append", help="parameter key=value for a detector given by name")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    import dfzoo
    from dfzoo.cli import writable_file
    from dfzoo.detector import META_FILE, RunContext
    from dfzoo.device import pick_device

    pick_device(args.device)
    if args.out:
        writable_file(args.out, "--out")
    if (Path(args.detector) / META_FILE).exists():
        detector = dfzoo.load_fitted(args.detector)
    else:
        detector = dfzoo.load_detector(args.detector, **parse_params(args.param))
        if detector.trainable:
            raise ValueError(
                f"{args.detector} must be trained first: `dfzoo fit {args.detector} ... --out DIR`, then pass DIR here"
            )
    detector.setup(RunContext(device=args.device))
    samples = [s for path in args.paths for s in dfzoo.samples_from(path)]
    if not samples:
        raise ValueError(f"no image files found in {', '.join(args.paths)}")
    scores = detector.score(samples)
    threshold = detector.describe().get("threshold", 0.5)
    with open(args.out, "w", newline="") if args.out else nullcontext(sys.stdout) as out:
        writer = csv.writer(out)
        writer.writerow(["path", "score", "fake", "error"])
        for sample, score in zip(samples, scores, strict=True):
            ok = not np.isnan(score)
            reason = "" if ok else getattr(detector, "skipped", {}).get(sample.display_name, "unreadable")
            writer.writerow([sample.path, f"{score:.6g}" if ok else "", int(score > threshold) if ok else "", reason])
    if args.out:
        print(f"scored {len(samples)} images ({int(np.isnan(scores).sum())} unreadable) -> {args.out}", file=sys.stderr)
    return 0


@hookimpl
def dfzoo_commands():
    yield CommandSpec(
        name="list",
        summary="List detectors, datasets, backbones and whether weights resolve here",
        add_arguments=_list_arguments,
        run=_list,
    )
    yield CommandSpec(
        name="weights",
        summary="Show where each pretrained weights file resolves (offline first)",
        add_arguments=_weights_arguments,
        run=_weights,
    )
    yield CommandSpec(
        name="fit", summary="Train a detector on a dataset and save it", add_arguments=_fit_arguments, run=_fit
    )
    yield CommandSpec(
        name="predict",
        summary="Score images or folders with a saved detector (CSV out)",
        add_arguments=_predict_arguments,
        run=_predict,
    )
