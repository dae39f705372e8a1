"""Shared test kit: a tiny benchmark (the HFEnergy detector, a generated three-generator dataset and a
registry with only what harness tests need), a plugin made of given specs, a tiny random backbone plugin, fake
plugin distributions, small trained-detector tasks and their quick training params."""

from __future__ import annotations

import json
import math
import textwrap
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

import dfzoo
from dfzoo.benchmark.protocol import parse_protocol
from dfzoo.data.decode import ImageDecodeError
from dfzoo.data.sample import REAL_POOL, DatasetIndex, Sample
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry
from tests.synthetic import planted_fake, smooth_image


def wave_fake(rng: np.random.Generator, size: int = 32, period: float = 5.0, amplitude: float = 20.0) -> np.ndarray:
    """A smooth image plus a diagonal sinusoid: one sharp peak pair in the spectrum."""
    base = smooth_image(rng, size).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    wave = amplitude * np.sin(2 * np.pi * (xx + yy) / period)
    return np.clip(base + wave[..., None], 0, 255).astype(np.uint8)


_image_rng = np.random.default_rng(0)  # a stream shared by calls: every image written is distinct


def write_images(folder: Path, count: int, prefix: str = "", ext: str = "png", size: int = 8) -> list[Path]:
    """``count`` small distinct images in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i:03d}.{ext}"
        Image.fromarray(smooth_image(_image_rng, size)).save(path)
        paths.append(path)
    return paths


def counts(index: DatasetIndex) -> dict[tuple[str, str, int], int]:
    """Samples per (split, generator, label)."""
    out: dict[tuple[str, str, int], int] = {}
    for s in index.samples:
        key = (s.split, s.generator, s.label)
        out[key] = out.get(key, 0) + 1
    return out


GENERATORS = {
    "gan_a": ("gan", lambda rng: planted_fake(rng, period=2)),
    "gan_b": ("gan", lambda rng: planted_fake(rng, period=4)),
    "diff_a": ("diffusion", wave_fake),
}


def write_task(root: Path, per_class: int, seed: int, generators: tuple[str, ...] = ("gan_a",)) -> list[Sample]:
    """``per_class`` smooth reals and as many fakes cycling over ``generators`` (32 px PNGs)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(per_class):
        path = root / f"real_{i:03d}.png"
        Image.fromarray(smooth_image(rng)).save(path)
        samples.append(Sample(path=path, label=0, generator="real", family="real"))
        name = generators[i % len(generators)]
        family, make = GENERATORS[name]
        path = root / f"{name}_{i:03d}.png"
        Image.fromarray(make(rng)).save(path)
        samples.append(Sample(path=path, label=1, generator=name, family=family))
    return samples


def tiny_resnet_params(image_size: int, epochs: int, **extra: Any) -> dict[str, Any]:
    """Params under which resnet_finetune or hierarchical_resnet18 trains a random-init resnet10t in seconds on
    a CPU (batch 8, no augmentation, no validation split), with ``extra`` on top."""
    return {
        "arch": "resnet10t",
        "pretrained": False,
        "image_size": image_size,
        "epochs": epochs,
        "batch_size": 8,
        "augment": "none",
        "val_fraction": 0.0,
        **extra,
    }


def fit_args(dataset: Path, out: Path) -> list[str]:
    """``dfzoo fit`` arguments that train nn_cosine on the tiny_cnn backbone over a ForenSynths-layout folder."""
    fixed = ["fit", "nn_cosine", "--layout", "forensynths", "--param", "backbone=tiny_cnn"]
    return [*fixed, "--dataset", str(dataset), "--out", str(out)]


def install_fake_distribution(root: Path, name: str, module_source: str) -> None:
    """Write a module plus a ``.dist-info`` with a ``dfzoo`` entry point, as ``pip install`` would."""
    (root / f"{name}_plugin.py").write_text(textwrap.dedent(module_source))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[dfzoo]\n{name} = {name}_plugin\n")


TINY_GENERATORS = {"gan_a": ("gan", 2), "gan_b": ("gan", 4), "diff_c": ("diffusion", 3)}


class HFEnergy(dfzoo.Detector):
    """Log energy of the Laplacian of the grey image, squashed around the midpoint learnt in ``fit``.

    ``fail`` makes it raise in "fit" or "score" (the factory handles "factory"). Class-level counters let
    tests see how often it was fitted; ``interrupt_after`` raises KeyboardInterrupt on a later score call.
    """

    trainable = True
    fit_calls: ClassVar[Counter] = Counter()
    score_calls: ClassVar[Counter] = Counter()
    interrupt_after: int | None = None

    def energy(self, sample: Sample) -> float:
        try:
            image = sample.load()  # decoded, with the harness's perturbation for this view
        except ImageDecodeError:
            return math.nan
        grey = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
        lap = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
        return float(np.log(np.mean(lap**2) + 1e-8))

    def fit(self, train: Sequence[Sample]) -> HFEnergy:
        HFEnergy.fit_calls[self.params.get("fail", "")] += 1
        if self.params.get("fail") == "fit":
            raise RuntimeError("fit exploded on purpose")
        energies = np.array([self.energy(s) for s in train])
        labels = np.array([s.label for s in train])
        real, fake = np.nanmean(energies[labels == 0]), np.nanmean(energies[labels == 1])
        self.mid, self.scale = float((real + fake) / 2), float(max(abs(fake - real) / 4, 1e-3))
        self.fitted = True
        return self

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        self._require_fitted()
        HFEnergy.score_calls[self.params.get("fail", "")] += 1
        if HFEnergy.interrupt_after is not None and sum(HFEnergy.score_calls.values()) > HFEnergy.interrupt_after:
            raise KeyboardInterrupt
        if self.params.get("fail") == "score":
            raise ValueError("score exploded on purpose")
        return self._scores(samples)

    def _scores(self, samples: Sequence[Sample]) -> np.ndarray:
        energies = np.array([self.energy(s) for s in samples])
        return 1.0 / (1.0 + np.exp(-(energies - self.mid) / self.scale))

    def describe(self) -> dict:
        return {"feature": "laplacian-energy", "weights": "none"}

    def extra_metrics(self, samples: Sequence[Sample]) -> dict:
        scores = self._scores(samples)
        labels = np.array([s.label for s in samples])
        predicted = (scores >= 0.5).astype(int)
        confusion = [[int(np.sum((labels == t) & (predicted == p))) for p in (0, 1)] for t in (0, 1)]
        return {"confusion": confusion, "per_family": {"gan": 1.0, "diffusion": 0.5}}

    def _save_state(self, folder: Path) -> None:
        (folder / "state.json").write_text(json.dumps({"mid": self.mid, "scale": self.scale}))

    def _load_state(self, folder: Path) -> None:
        state = json.loads((folder / "state.json").read_text())
        self.mid, self.scale = state["mid"], state["scale"]


def make_hf_energy(fail: str = "") -> HFEnergy:
    """High-frequency energy (tests)."""
    if fail == "factory":
        raise RuntimeError("factory exploded on purpose")
    return HFEnergy(fail=fail)


def write_tiny_dataset(folder: Path, reals: int = 24, fakes: int = 12, corrupt: bool = False) -> Path:
    """``folder/real/*.png`` (shared reals) and ``folder/<generator>/*.png`` fakes, 32 px."""
    rng = np.random.default_rng(0)
    (folder / REAL_POOL).mkdir(parents=True, exist_ok=True)
    for i in range(reals):
        Image.fromarray(smooth_image(rng)).save(folder / REAL_POOL / f"{i:03d}.png")
    for generator, (_, period) in TINY_GENERATORS.items():
        (folder / generator).mkdir(exist_ok=True)
        for i in range(fakes):
            Image.fromarray(planted_fake(rng, period=period)).save(folder / generator / f"{i:03d}.png")
    if corrupt:
        (folder / "gan_b" / "broken.png").write_bytes(b"this is not a png")
    return folder


def load_tiny_dataset(root: Path | None = None, folder: str = "") -> DatasetIndex:
    """Tiny generated zoo (tests): the folder :func:`write_tiny_dataset` wrote."""
    base = Path(folder)
    samples = []
    for path in sorted(base.glob("*/*.png")):
        generator = path.parent.name
        family = "real" if generator == REAL_POOL else TINY_GENERATORS[generator][0]
        samples.append(Sample(path=path, label=0 if generator == REAL_POOL else 1, generator=generator, family=family))
    families = {g: f for g, (f, _) in TINY_GENERATORS.items()}
    metadata = {"content_sha256": "c" * 64, "reference_match": True}  # as the generator zoo states them
    return DatasetIndex(
        name="tinyzoo", layout="tinyzoo", root=base, samples=samples, families=families, metadata=metadata
    )


class SpecPlugin:
    """A test plugin offering the specs it is given, by kind: ``SpecPlugin(detectors=[...], datasets=[...])``
    implements ``dfzoo_detectors`` and ``dfzoo_datasets``, so a test writes its specs and not the hooks (a kind
    without a hookspec fails when the plugin manager checks its plugins)."""

    def __init__(self, **specs: Sequence[Any]) -> None:
        for kind, offered in specs.items():
            setattr(self, f"dfzoo_{kind}", dfzoo.hookimpl(lambda offered=list(offered): offered))


class BenchmarkTestPlugin(SpecPlugin):
    """hf_energy, a detector needing weights that are never present, and the named dataset "tinyzoo"."""

    def __init__(self) -> None:
        super().__init__(
            detectors=[
                dfzoo.DetectorSpec(name="hf_energy", factory=make_hf_energy, params={"fail": ""}),
                dfzoo.DetectorSpec(
                    name="needs_weights",
                    summary="needs absent weights (tests)",
                    factory=lambda backbone="absent_weights": HFEnergy(),
                    params={"backbone": "absent_weights"},
                ),
            ],
            weights=[
                dfzoo.WeightsSpec(name="absent_weights", summary="never present", library="file", files=("w.bin",))
            ],
            datasets=[dfzoo.DatasetSpec(name="tinyzoo", load=load_tiny_dataset, needs_root=False)],
        )


def make_registry() -> Registry:
    """Only what these tests need (perturbations + the test plugin): independent of other plugins' state."""
    import dfzoo.plugins.commands.benchmark as commands
    import dfzoo.plugins.perturbations.standard as perturbations

    return Registry(
        get_plugin_manager(
            builtins=False, autoload=False, extra_plugins=(perturbations, commands, BenchmarkTestPlugin())
        )
    )


def tiny_protocol(folder: Path, **overrides) -> dfzoo.benchmark.protocol.Protocol:
    data = {
        "name": "tiny",
        "dataset": "tinyzoo",
        "dataset_params": {"folder": str(folder)},
        "train_generators": ["gan_a"],
        "test_generators": "all",
        "bootstrap": 50,
        "perturbations": ["none", "jpeg:quality=75"],
        "detectors": [{"name": "hf_energy"}],
    }
    data.update(overrides)
    return parse_protocol(data)


class TinyBackbonePlugin:
    """A test plugin: ``tiny_cnn`` is a randomly initialised timm ResNet at 32 px (seeded, so stable);
    ``tiny_vit`` a timm ViT of the same kind, for detectors that need transformer blocks (:mod:`dfzoo.layers`)."""

    @dfzoo.hookimpl
    def dfzoo_backbones(self):
        def factory(weights=None, device=None):
            import timm
            import torch

            from dfzoo.features import TorchBackbone
            from dfzoo.transforms import Normalisation

            torch.manual_seed(0)
            model = timm.create_model("resnet10t", pretrained=False, num_classes=0)
            return TorchBackbone("tiny_cnn", model, Normalisation(size=32), model.num_features, None, device)

        yield dfzoo.BackboneSpec(
            name="tiny_cnn", summary="random-init timm resnet10t at 32 px (tests)", factory=factory, feature_dim=512
        )

        def vit_factory(weights=None, device=None):
            import timm
            import torch

            from dfzoo.features import TorchBackbone
            from dfzoo.transforms import Normalisation

            torch.manual_seed(0)
            model = timm.create_model(
                "vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2, num_classes=0
            )
            return TorchBackbone("tiny_vit", model, Normalisation(size=32), 32, None, device)

        yield dfzoo.BackboneSpec(
            name="tiny_vit",
            summary="random-init timm ViT (depth 3, width 32) at 32 px, exposes its blocks (tests)",
            factory=vit_factory,
            feature_dim=32,
        )
