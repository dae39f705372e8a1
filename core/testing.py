"""The contract kit for detector authors: ``check_detector(name)`` runs a detector through the rules the
harness relies on, on small generated images, and says which rules it breaks.

The rules: it builds from its spec; ``fit`` and ``score`` give one float per sample; an undecodable image
gets NaN (with a reason) instead of failing the batch; a perturbation of the harness reaches it (some score
changes under JPEG-10 or blur); a score does not depend on the batch it was computed in and is the same
twice; a saved detector scores the same after ``load_fitted``; ``describe()`` is JSON and names the identity
of the weights it uses. Installed with dfzoo, the pytest plugin :mod:`dfzoo.pytest_plugin` offers it as the
fixture ``dfzoo_check_detector``::

    def test_my_detector(dfzoo_check_detector):
        dfzoo_check_detector("my_detector")
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .data.sample import Sample
from .detector import Detector, RunContext
from .spec import DetectorSpec

if TYPE_CHECKING:
    from dfzoo.registry import Registry

PERTURBATIONS = ("jpeg:quality=10", "blur:sigma=2")  # strong enough that any image-based score moves
BATCH_PROBES = 4  # test images scored alone to compare with their batch scores
WEIGHT_MARKERS = ("sha256:", "random-init", "@")  # how a weights identity reads in describe()


class ContractError(AssertionError):
    """A detector broke one or more rules; the message lists each with what was seen."""


@dataclass
class ContractReport:
    """Each rule checked (name -> passed) and, for the broken ones, what was seen."""

    detector: str
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        lines = [f"{self.detector}: {len(self.passed)} rule(s) kept, {len(self.failed)} broken"]
        lines += [f"  broken: {rule}: {seen}" for rule, seen in self.failed.items()]
        return "\n".join(lines)


# -- generated images ------------------------------------------------------------------------------------
def smooth_image(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A natural-looking smooth RGB image (low-frequency noise upsampled), uint8 HWC."""
    coarse = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))


def planted_fake(rng: np.random.Generator, size: int = 32, period: int = 2, amplitude: float = 24.0) -> np.ndarray:
    """A smooth image plus a periodic grid (the checkerboard a transposed convolution leaves)."""
    base = smooth_image(rng, size).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    pattern = ((yy % period == 0) ^ (xx % period == 0)).astype(np.float32) * 2 - 1
    return np.clip(base + amplitude * pattern[..., None], 0, 255).astype(np.uint8)


def write_folder_dataset(
    root: Path, generators: Mapping[str, int] | None = None, per_class: int = 12, size: int = 32, seed: int = 0
) -> Path:
    """``root/<gen>/{0_real,1_fake}/*.png`` (ForenSynths layout); ``generators`` maps name -> grid period."""
    generators = generators or {"gan_a": 2, "gan_b": 4}
    rng = np.random.default_rng(seed)
    for name, period in generators.items():
        for label, folder in ((0, "0_real"), (1, "1_fake")):
            out = root / name / folder
            out.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = smooth_image(rng, size) if label == 0 else planted_fake(rng, size, period)
                Image.fromarray(pixels).save(out / f"{i:04d}.png")
    return root


def labelled_samples(root: Path) -> list[Sample]:
    """The samples of a :func:`write_folder_dataset` tree, labelled from their folder names."""
    return [
        Sample(
            path=p,
            label=int(p.parent.name == "1_fake"),
            generator=p.parent.parent.name,
            family="gan" if p.parent.name == "1_fake" else "real",
        )
        for p in sorted(root.rglob("*.png"))
    ]


# -- the check -------------------------------------------------------------------------------------------
def check_detector(
    name_or_spec: str | DetectorSpec,
    workdir: str | Path,
    *,
    params: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    raise_on_failure: bool = True,
) -> ContractReport:
    """Run detector ``name_or_spec`` (with ``params``, default: its spec's ``smoke_params``) through every
    rule on generated 32 px images in ``workdir``; raise :class:`ContractError` listing the broken rules.

    The detector must be registered (``registry``, default the current one): saving and reloading go by name.
    """
    import dfzoo

    from .registry import current_registry, use_registry
    from .transforms import make_perturbation

    registry = registry or current_registry()
    spec = registry.detector(name_or_spec.name if isinstance(name_or_spec, DetectorSpec) else name_or_spec)
    params = dict(spec.smoke_params if params is None else params)
    workdir = Path(workdir)
    report = ContractReport(spec.name)
    hide = not spec.reads_files
    with use_registry(registry):
        samples = labelled_samples(write_folder_dataset(workdir / "data"))
        train = [s.view(None, hide_path=hide) for s in samples[::2]]
        test = [s.view(None, hide_path=hide) for s in samples[1::2]]
        corrupt = workdir / "corrupt.png"
        corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a PNG")
        context = RunContext(progress=False, workdir=workdir / "work")

        def rule(name: str, check: Callable[[], str | None]) -> bool:
            try:
                problem = check()
            except Exception as error:  # a rule that raises is a broken rule, reported with what raised
                problem = f"raised {type(error).__name__}: {error}"
            if problem:
                report.failed[name] = problem
            else:
                report.passed.append(name)
            return not problem

        built: dict[str, Detector] = {}

        def build_and_fit() -> str | None:
            detector = dfzoo.load_detector(spec.name, registry=registry, **params).setup(context)
            if spec.trainable:
                detector.fit(train)
            built["detector"] = detector
            return None

        if not rule("builds and fits", build_and_fit):
            return _finish(report, raise_on_failure)
        detector = built["detector"]
        scores: dict[str, np.ndarray] = {}

        def shapes() -> str | None:
            scores["clean"] = np.asarray(detector.score(test))
            if scores["clean"].shape != (len(test),) or scores["clean"].dtype.kind != "f":
                return f"score() gave shape {scores['clean'].shape} / dtype {scores['clean'].dtype} for {len(test)}"
            if not np.isfinite(scores["clean"]).all():
                return f"{int((~np.isfinite(scores['clean'])).sum())} non-finite scores on decodable images"
            return None

        if not rule("one finite float per sample", shapes):
            return _finish(report, raise_on_failure)
        clean = scores["clean"]

        def corrupt_is_nan() -> str | None:
            bad = Sample(path=corrupt, label=1).view(None, hide_path=hide)
            out = np.asarray(detector.score([*test[:2], bad]), dtype=np.float64)
            if not np.isnan(out[-1]):
                return f"an undecodable image scored {out[-1]} instead of NaN"
            if not np.isfinite(out[:2]).all():
                return "an undecodable image in the batch spoiled its batch-mates' scores"
            return None

        def perturbation_reaches() -> str | None:
            for key in PERTURBATIONS:
                perturbation = make_perturbation(key, registry)
                moved = np.asarray(detector.score([s.view(perturbation, hide_path=hide) for s in test]))
                if not np.array_equal(moved, clean):
                    return None
            return (
                f"scores were bit-identical under {' and '.join(PERTURBATIONS)}: the detector does not see "
                "the harness's perturbations (read pixels with sample.load())"
            )

        def batch_invariant() -> str | None:
            alone = np.array([float(detector.score([s])[0]) for s in test[:BATCH_PROBES]])
            if not np.allclose(alone, clean[:BATCH_PROBES], rtol=1e-4, atol=1e-5):
                return f"scores alone {alone.round(6).tolist()} != in a batch {clean[:BATCH_PROBES].round(6).tolist()}"
            return None

        def deterministic() -> str | None:
            again = np.asarray(detector.score(test))
            return None if np.allclose(again, clean, rtol=1e-5, atol=1e-6) else "a second score() gave other values"

        def round_trip() -> str | None:
            saved = detector.save(workdir / "saved")
            reloaded = dfzoo.load_fitted(saved, registry=registry).setup(RunContext(progress=False))
            again = np.asarray(reloaded.score(test))
            if not np.allclose(again, clean, rtol=1e-5, atol=1e-6):
                return f"reloaded scores differ by up to {np.nanmax(np.abs(again - clean)):.3g}"
            return None

        def describes_weights() -> str | None:
            described = detector.describe()
            text = json.dumps(described)
            uses_weights = any(params.get(key, spec.params.get(key)) for key in spec.weight_params)
            if uses_weights and not any(marker in text for marker in WEIGHT_MARKERS):
                return (
                    f"describe() does not name the identity of its weights ({', '.join(spec.weight_params)}): "
                    f"{text[:200]}"
                )
            return None

        rule("an undecodable image is NaN, not an error", corrupt_is_nan)
        rule("a harness perturbation changes some score", perturbation_reaches)
        rule("a score does not depend on its batch", batch_invariant)
        rule("the same scores twice", deterministic)
        rule("save -> load_fitted scores the same", round_trip)
        rule("describe() is JSON and names its weights", describes_weights)
    return _finish(report, raise_on_failure)


def _finish(report: ContractReport, raise_on_failure: bool) -> ContractReport:
    if raise_on_failure and not report.ok:
        raise ContractError(str(report))
    return report


__all__ = [
    "ContractError",
    "ContractReport",
    "check_detector",
    "labelled_samples",
    "planted_fake",
    "smooth_image",
    "write_folder_dataset",
]
