"""Core sub-commands: ``list``, ``info``, ``weights``, ``fit`` and ``predict``."""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from dfzoo import CommandSpec, hookimpl


def parse_params(pairs: list[str] | None, detector: str) -> dict[str, Any]:
    """``--param key=value`` (or ``detector.key=value``) flags for ``detector``, typed as ``dfzoo run`` types
    them (TOML values; the detector's spec reads ``none`` as None where the parameter allows None and has no
    ``"none"`` choice)."""
    from dfzoo.benchmark.entries import split_params
    from dfzoo.benchmark.protocol import ProtocolError
    from dfzoo.benchmark.protocol import parse_params as parse
    from dfzoo.registry import current_registry

    shared, own = split_params(parse(pairs or []), current_registry().names("detector"))
    other = sorted(set(own) - {detector})
    if other:
        raise ProtocolError(f"--param {other[0]}.*: this command runs {detector}, not {other[0]}")
    return {**shared, **own.get(detector, {})}


# -- list and info ---------------------------------------------------------------------------------------
KINDS = ("detectors", "datasets", "backbones", "weights", "perturbations", "commands")


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what", nargs="?", metavar="KIND|DETECTOR", help=f"only this kind ({', '.join(KINDS)}), or one detector"
    )
    parser.add_argument(
        "--offline", action="store_true", help="only what runs on this machine now (weights present, no download)"
    )


def _info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("detector", help="a detector name (see `dfzoo list detectors`)")


def _info(args: argparse.Namespace) -> int:
    """One detector: summary, paper, parameters, weights and an example command that runs offline."""
    from dfzoo.plugins.commands._info import detector_info
    from dfzoo.registry import current_registry

    print(detector_info(current_registry(), args.detector))
    return 0


def _list(args: argparse.Namespace) -> int:
    """List detectors, datasets, backbones and whether weights resolve here."""
    from tabulate import tabulate

    from dfzoo.plugins.commands._info import NO_OFFLINE, WeightsCheck, offline_params, param_flags
    from dfzoo.registry import current_registry

    registry = current_registry()
    if args.what and args.what not in KINDS:
        if args.what in registry.names("detector"):
            return _info(argparse.Namespace(detector=args.what))
        registry.detector(args.what)  # an unknown name: the error suggests close names
    resolves = WeightsCheck(registry)

    def weights_state(names: list[str]) -> str:
        if not names:
            return "none needed"
        return ", ".join(f"{n} ({'ok' if resolves(n) else 'missing'})" for n in names)

    detectors = []
    for e in registry.entries("detector"):
        offline = offline_params(e.spec.name, resolves)
        if args.offline and offline is NO_OFFLINE:
            continue
        here = (
            "no" if offline is NO_OFFLINE else ("yes" if not offline else f"with {param_flags(e.spec.name, offline)}")
        )
        needed = weights_state(registry.weights_needed(e.spec.name))
        trainable = "yes" if e.spec.trainable else "no"
        detectors.append([e.spec.name, trainable, here, needed, e.spec.summary, e.provider])
    backbones = [
        e for e in registry.entries("backbone") if not args.offline or not e.spec.weights or resolves(e.spec.weights)
    ]
    weights = [e for e in registry.entries("weights") if not args.offline or resolves(e.spec.name)]
    tables = {
        "detectors": (
            ["detector", "trainable", "runs here", "default weights here", "summary", "plugin"],
            detectors,
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
                for e in backbones
            ],
        ),
        "weights": (
            ["weights", "resolves offline", "library", "source", "summary"],
            [
                [e.spec.name, "yes" if resolves(e.spec.name) else "no", e.spec.library, e.spec.source, e.spec.summary]
                for e in weights
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
        if args.what and args.what != kind:
            continue
        print(f"\n## {kind}\n")
        print(tabulate(rows, headers=headers, tablefmt="github", maxcolwidths=[None, None, 40, 40, 60, 40]))
    if args.offline:
        print("\nonly what runs here without a download (`dfzoo list` shows everything installed)")
    if not args.what:
        print("\n`dfzoo info DETECTOR`: its parameters, weights and an example command")
    if registry.problems and not args.what:
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
    """Show where each pretrained weights file resolves (offline first)."""
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
    parser.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="detector parameter key=value or NAME.key=value"
    )
    parser.add_argument("--out", required=True, help="folder to save the fitted detector in")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--calibrate",
        choices=["platt", "isotonic"],
        help="map scores to probabilities, fitted on held-out training images (--calibration-fraction); "
        "labels then mean probability >= 0.5",
    )
    parser.add_argument(
        "--calibration-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="share of the real and of the fake training images held out to calibrate on (default 0.2)",
    )
    parser.add_argument(
        "--threshold",
        choices=["probability", "real-fpr"],
        help="how labels are set: probability >= 0.5 (needs --calibrate; its default), or real-fpr: the score "
        "that flags 5%% of real images (held-out reals when calibrating, else up to 512 training reals; the "
        "default without calibration unless the detector states its own threshold)",
    )
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help="keep OUT/work (training checkpoints; can be GBs); by default it is removed once the model is saved",
    )


def _fit(args: argparse.Namespace) -> int:
    """Train a detector on a dataset and save it."""
    import dfzoo
    from dfzoo.calibration import holdout_split
    from dfzoo.cli import writable_dir
    from dfzoo.detector import RunContext
    from dfzoo.device import pick_device

    pick_device(args.device)  # everything that can be checked is, before the dataset is read
    writable_dir(args.out, "--out")
    detector = dfzoo.load_detector(args.detector, **parse_params(args.param, args.detector))
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
    held_out: list[Any] = []
    if args.calibrate:  # held out before fitting: the calibrator never sees scores of images the model learnt
        samples, held_out = holdout_split(samples, args.calibration_fraction, args.seed)
    work = Path(args.out) / "work"
    detector.setup(RunContext(seed=args.seed, device=args.device, workdir=work))
    detector.fit(samples)
    record_decision(detector, samples, held_out, args)
    folder = detector.save(args.out)
    if not args.keep_work:  # a failed fit keeps it, so a re-run can resume from its checkpoints
        shutil.rmtree(work, ignore_errors=True)
    calibrated = f", calibrated ({args.calibrate}) on {len(held_out)} held-out images" if args.calibrate else ""
    print(f"fitted {args.detector} on {len(samples)} images{calibrated}; saved to {folder}")
    policy = detector.threshold_policy
    print(f"labels: {policy.describe() if policy else 'no threshold (scores only)'}")
    return 0


def record_decision(detector: Any, fitted_on: list[Any], held_out: list[Any], args: argparse.Namespace) -> None:
    """Set ``detector.calibration`` (fitted on the held-out images' scores) and ``detector.threshold_policy``
    (see ``--threshold``), choosing a fixed-FPR threshold as the benchmark does."""
    import numpy as np

    from dfzoo.benchmark.metrics import DEFAULT_THRESHOLD_FPR, TRAIN_REAL_QUANTILE_POLICY, threshold_from_reals
    from dfzoo.benchmark.runner import THRESHOLD_REALS, decision_threshold
    from dfzoo.benchmark.splits import Split
    from dfzoo.calibration import DETECTOR, PROBABILITY, TRAIN_REAL_FPR, Calibration, ThresholdPolicy
    from dfzoo.predict import reads_files

    if args.threshold == "probability" and not held_out:
        raise ValueError("--threshold probability needs --calibrate platt|isotonic (scores are not probabilities)")
    hide = not reads_files(detector)
    if held_out:
        scores = np.asarray(detector.score([s.view(None, hide_path=hide) for s in held_out]), dtype=np.float64)
        labels = np.array([s.label for s in held_out])
        detector.calibration = Calibration.fit(args.calibrate, scores, labels, args.calibration_fraction)
        if args.threshold != "real-fpr":
            detector.threshold_policy = ThresholdPolicy(PROBABILITY, 0.5)
            return
        reals = scores[labels == 0]
        threshold = threshold_from_reals(reals, DEFAULT_THRESHOLD_FPR)
        detector.threshold_policy = ThresholdPolicy(TRAIN_REAL_FPR, threshold, DEFAULT_THRESHOLD_FPR, len(reals))
        return
    describe = {} if args.threshold == "real-fpr" else detector.describe()  # {}: no stated threshold to use
    split = Split(train=list(fitted_on), tests={}, train_generators=[], test_generators=[])
    threshold, policy, fpr = decision_threshold(detector, describe, split, args.seed, hide)
    if policy == TRAIN_REAL_QUANTILE_POLICY:
        n_real = min(THRESHOLD_REALS, sum(s.label == 0 for s in fitted_on))
        detector.threshold_policy = ThresholdPolicy(TRAIN_REAL_FPR, threshold, fpr, n_real)
    elif policy == DETECTOR:
        detector.threshold_policy = ThresholdPolicy(DETECTOR, threshold)


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("detector", help="a saved detector folder, or the name of a training-free detector")
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--out", help="CSV file to write (default: standard output)")
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="parameter key=value (or NAME.key=value): a saved model's parameters are overridden (e.g. batch_size)",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")


def _predict(args: argparse.Namespace) -> int:
    """Score images or folders with a saved detector (CSV out)."""
    import numpy as np

    import dfzoo
    from dfzoo.cli import writable_file
    from dfzoo.detector import META_FILE, RunContext, read_meta
    from dfzoo.device import pick_device

    pick_device(args.device)
    if args.out:
        writable_file(args.out, "--out")
    if (Path(args.detector) / META_FILE).exists():  # a saved model: --param overrides its saved parameters
        detector = dfzoo.load_fitted(args.detector, **parse_params(args.param, read_meta(args.detector)["detector"]))
    else:
        detector = dfzoo.load_detector(args.detector, **parse_params(args.param, args.detector))
        if detector.trainable:
            raise ValueError(
                f"{args.detector} must be trained first: `dfzoo fit {args.detector} ... --out DIR`, then pass DIR here"
            )
    detector.setup(RunContext(device=args.device))
    prediction = detector.predict(args.paths)
    with open(args.out, "w", newline="") if args.out else nullcontext(sys.stdout) as out:
        writer = csv.writer(out)
        writer.writerow(["path", "score", "fake", "probability", "error"])
        for i, (name, score, label, probability) in enumerate(prediction):
            ok = not np.isnan(score)
            writer.writerow(
                [
                    name,
                    f"{score:.6g}" if ok else "",
                    label if ok and label is not None else "",
                    f"{probability:.6g}" if ok and probability is not None else "",
                    prediction.errors.get(i, ""),
                ]
            )
    policy = prediction.policy
    print(
        f"scored {len(prediction)} images ({len(prediction.errors)} unreadable); fake = "
        f"{policy.describe() if policy else 'empty: no threshold recorded (dfzoo fit records one)'}"
        + (f" -> {args.out}" if args.out else ""),
        file=sys.stderr,
    )
    return 0


@hookimpl
def dfzoo_commands():
    yield CommandSpec(name="list", add_arguments=_list_arguments, run=_list)
    yield CommandSpec(name="info", add_arguments=_info_arguments, run=_info)
    yield CommandSpec(name="weights", add_arguments=_weights_arguments, run=_weights)
    yield CommandSpec(name="fit", add_arguments=_fit_arguments, run=_fit)
    yield CommandSpec(name="predict", add_arguments=_predict_arguments, run=_predict)
