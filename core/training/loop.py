"""The training loop (seeded split, optimiser, mixed precision on CUDA, early stopping, checkpoints
after every epoch and resumption), loss functions, and batched inference."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.sample import Sample

if TYPE_CHECKING:
    pass

from .config import TrainConfig
from .data import SampleDataset, SamplePipeline, collate

log = logging.getLogger(__name__)

CHECKPOINT_FILE, BEST_FILE = "last.pt", "best.pt"


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
        from ..safeio import UnsafeFileError, torch_load

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


def train_model(
    model: Any,
    dataset: SampleDataset,
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    device: Any,
    val_dataset: SampleDataset | None = None,
    checkpoint: Checkpointer | None = None,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = True,
    desc: str = "train",
    seed: int = 0,
) -> TrainReport:
    """Train ``model`` in place; on return it holds the weights of the best epoch.

    Every epoch: seeded shuffle, forward/backward under :func:`dfzoo.device.autocast` (float16 with a grad
    scaler on CUDA), the mean validation loss, early-stopping bookkeeping, a checkpoint, then ``callbacks``
    (an exception raised there interrupts training after the checkpoint, like a crash would). When
    ``checkpoint`` holds a run with the same key, training resumes after its last finished epoch; a finished
    run is restored without training.
    """
    import torch
    from tqdm.auto import tqdm

    from ..device import autocast

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
        # SampleDataset is a duck-typed map-style dataset (torch is imported lazily), not a Dataset subclass
        loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
            dataset,  # type: ignore[arg-type]
            batch_size=config.batch_size,
            shuffle=True,
            generator=order,
            collate_fn=collate,
            num_workers=workers,
            drop_last=False,
            pin_memory=device.type == "cuda",
        )
        model.train()
        if config.freeze_norm:
            for module in model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        total, seen = 0.0, 0
        bar = tqdm(
            loader, desc=f"{desc} epoch {epoch}/{config.epochs}", unit="batch", leave=False, disable=not progress
        )
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
        val_loss = (
            evaluate_loss(model, val_dataset, loss_fn, config, device, use_amp) if monitor == "val_loss" else None
        )
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            images=seen,
            lr=float(optimiser.param_groups[0]["lr"]),
        )
        report.history.append(record)
        current = val_loss if monitor == "val_loss" else train_loss
        improved = False
        if (
            current is not None
            and math.isfinite(current)
            and (report.best_loss is None or current < report.best_loss - config.min_delta)
        ):
            report.best_loss, report.best_epoch, bad_epochs, improved = current, epoch, 0, True
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        if config.patience and bad_epochs >= config.patience and epoch < config.epochs:
            report.stopped_early = True
        if checkpoint is not None:
            checkpoint.save(
                {
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimiser": optimiser.state_dict(),
                    "scaler": scaler.state_dict() if use_amp else {},
                    "history": [asdict(r) for r in report.history],
                    "best_epoch": report.best_epoch,
                    "best_loss": report.best_loss,
                    "bad_epochs": bad_epochs,
                    "stopped_early": report.stopped_early,
                    "skipped": {str(k): v for k, v in report.skipped.items()},
                },
                best_state if improved else None,
            )
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


def evaluate_loss(
    model: Any, dataset: SampleDataset | None, loss_fn: LossFn, config: TrainConfig, device: Any, use_amp: bool = False
) -> float:
    """Mean ``loss_fn`` over ``dataset`` in eval mode without gradients (NaN when nothing decodes)."""
    import torch

    from ..device import autocast

    if dataset is None or not len(dataset):
        return math.nan
    loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
        dataset,  # type: ignore[arg-type]  # duck-typed map-style dataset, as in train_model
        batch_size=config.batch_size,
        shuffle=False,
        collate_fn=collate,
        num_workers=loader_workers(config, device),
    )
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


def predict(
    forward: Callable[[Any], Any],
    samples: Sequence[Sample],
    pipeline: SamplePipeline,
    *,
    device: Any,
    batch_size: int = 64,
    progress: bool = True,
    desc: str = "score",
    width: int = 1,
    use_amp: bool = True,
) -> tuple[np.ndarray, dict[int, str]]:
    """``forward(batch tensor) -> [B, width]`` over ``samples`` in eval/inference mode.

    Returns ``(outputs [N, width] float64, {position: reason})``; rows of undecodable samples are NaN.
    Decoding runs ahead of the model (:func:`dfzoo.batching.iter_batches`): threads beside the CPU, worker
    processes into pinned memory beside a GPU.
    """
    import torch
    from tqdm.auto import tqdm

    from ..batching import DecodePlan, iter_batches
    from ..device import autocast, to_device

    out = np.full((len(samples), width), np.nan, dtype=np.float64)
    errors: dict[int, str] = {}
    bar = tqdm(total=len(samples), desc=desc, unit="img", leave=False, disable=not progress or not samples)
    for batch in iter_batches(samples, pipeline.load, batch_size, plan=DecodePlan.for_device(device)):
        errors.update(batch.errors)
        if batch.indices:
            with torch.inference_mode(), autocast(device, enabled=use_amp):
                values = forward(to_device(batch.array, device))
            out[batch.indices] = values.float().reshape(len(batch.indices), width).cpu().numpy()
        bar.update(len(batch.indices) + len(batch.errors))
    bar.close()
    return out, errors


def bce_loss(model: Any, inputs: Any, targets: Any) -> Any:
    """Binary cross-entropy on the model's single logit."""
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(model(inputs).reshape(-1).float(), targets.float())


def ce_loss(model: Any, inputs: Any, targets: Any) -> Any:
    """Cross-entropy on the model's class logits."""
    import torch.nn.functional as F

    return F.cross_entropy(model(inputs).float(), targets.long())
