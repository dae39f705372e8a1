"""Detector bases that wire the training machinery to the run context: :class:`TrainedImageDetector`
(any number of torch models), :class:`SingleModelDetector` (one model, saved as safetensors) and
:class:`ImageClassifierDetector` (one image classifier trained with BCE: fit, score and explain in one place)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from ..data.decode import ImageDecodeError
from ..data.sample import Sample
from ..detector import Detector
from ..transforms import Normalisation

if TYPE_CHECKING:
    import torch

from dfzoo.plain import json_safe

from .config import Augment, TrainConfig
from .data import ImagePipeline, SampleDataset, SamplePipeline, binary_labels, samples_digest, split_indices
from .loop import Checkpointer, EpochCallback, LossFn, TrainReport, bce_loss, predict, train_model
from .models import load_module, save_module

log = logging.getLogger(__name__)

NATIVE_SIZE_CAP = 256  # largest input size taken from the data itself when nobody asked for a size


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
        self.init_weights: str = ""  # identity of the weights training started from (see create_timm_classifier)

    # -- context -----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        from ..device import pick_device

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

    def pipeline(
        self,
        normalisation: Normalisation,
        *,
        training: bool,
        augment: Augment = Augment(),
        post: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> ImagePipeline:
        """The input pipeline with the run's policy (augmentation only when ``training``)."""
        return ImagePipeline(
            policy=self.context.preprocess,
            normalisation=normalisation,
            augment=augment if training else Augment(),
            post=post,
        )

    def checkpointer(self, stage: str, samples: Sequence[Sample], targets: Sequence[Any]) -> Checkpointer | None:
        """A checkpoint folder for ``stage`` keyed by everything that changes the training run."""
        root = self.checkpoint_dir or self.context.workdir
        if root is None:
            return None
        context = self.context
        key_source = json.dumps(
            {
                "detector": self.name,
                "stage": stage,
                "params": json_safe(self.params),
                "seed": context.seed,
                "preprocess": context.preprocess.key,
                "image_size": self.image_size,
                "data": samples_digest(samples, targets),
            },
            sort_keys=True,
        )
        key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
        return Checkpointer(Path(root) / "checkpoints" / f"{self.name}-{stage}-{key}", key)

    def create_timm_classifier(self, num_classes: int, pretrained: bool, **kwargs: Any) -> Any:
        """A timm ``arch`` classifier with ``num_classes`` outputs from the options' ``weights`` /
        ``weights_path``, seeded by the run; records where its weights came from in ``init_weights``."""
        from .models import create_timm_model

        opts = self.options
        model, init = create_timm_model(
            opts["arch"],
            num_classes,
            pretrained=pretrained,
            weights=opts["weights"],
            weights_path=opts["weights_path"],
            seed=self.context.seed,
            **kwargs,
        )
        self.init_weights = init.identity
        return model

    # -- training and inference --------------------------------------------------------------------------
    def train_stage(
        self,
        stage: str,
        model: Any,
        samples: Sequence[Sample],
        targets: Sequence[Any],
        train_pipeline: SamplePipeline,
        eval_pipeline: SamplePipeline,
        loss_fn: LossFn,
        config: TrainConfig | None = None,
    ) -> TrainReport:
        """Split, train (resuming from a checkpoint when one matches) and record one model of this detector."""
        config = config or self.train_config
        seed = self.context.seed
        train_idx, val_idx = split_indices(targets, config.val_fraction, seed)
        train_set = SampleDataset(
            [samples[i] for i in train_idx], [targets[i] for i in train_idx], train_pipeline, seed=seed
        )
        val_set = (
            SampleDataset(
                [samples[i] for i in val_idx], [targets[i] for i in val_idx], eval_pipeline, augment=False, seed=seed
            )
            if val_idx
            else None
        )
        report = train_model(
            model,
            train_set,
            loss_fn,
            config,
            device=self.device,
            val_dataset=val_set,
            checkpoint=self.checkpointer(stage, samples, targets),
            callbacks=self.epoch_callbacks,
            progress=self.context.progress,
            desc=f"{self.name} {stage}",
            seed=seed,
        )
        for index, reason in report.skipped.items():
            self.record_skip(train_set.samples[index], reason)
        self.reports[stage] = report
        return report

    def run_model(
        self,
        forward: Callable[[Any], Any],
        samples: Sequence[Sample],
        pipeline: SamplePipeline,
        width: int = 1,
        desc: str = "score",
    ) -> np.ndarray:
        """``forward`` over samples (NaN rows for undecodable ones, which are recorded in ``skipped``)."""
        if hasattr(forward, "to") and hasattr(forward, "eval"):
            forward.to(self.device).eval()
        out, errors = predict(
            forward,
            samples,
            pipeline,
            device=self.device,
            batch_size=self.context.batch_size or self.train_config.batch_size,
            progress=self.context.progress,
            desc=f"{self.name} {desc}",
            width=width,
        )
        for position, reason in errors.items():
            self.record_skip(samples[position], reason)
        return out

    def fake_probability(self, model: Any, samples: Sequence[Sample], pipeline: SamplePipeline) -> np.ndarray:
        """The score of every single-logit detector: sigmoid of ``model``'s logit (NaN where undecodable)."""
        self._require_fitted()
        from scipy.special import expit

        return expit(self.run_model(model, samples, pipeline)[:, 0])

    def grad_cam(self, model: Any, samples: Sequence[Sample], pipeline: SamplePipeline) -> list[np.ndarray | None]:
        """Grad-CAM maps of ``model``'s fake logit over the inputs ``pipeline`` makes (None if undecodable)."""
        from ..explain import explain_batches

        return explain_batches(
            model.to(self.device), samples, pipeline, device=self.device, batch_size=self.context.batch_size or 16
        )

    def describe_training(self) -> dict[str, Any]:
        """What every trained detector's ``describe()`` reports: architecture, initial weights, input and
        training settings, and what the training did."""
        opts = self.options
        return {
            "arch": opts["arch"],
            "pretrained": bool(opts["pretrained"]),
            "init_weights": self.init_weights or ("pending (resolved at fit)" if opts["pretrained"] else "random-init"),
            "image_size": self.image_size,
            "preprocess": self.context.preprocess.key,
            "augment": opts["augment"],
            "optimiser": opts["optimiser"],
            "lr": opts["lr"],
            "batch_size": opts["batch_size"],
            "epochs": opts["epochs"],
            "freeze_norm": self.train_config.freeze_norm,
            "training": self.training_summary(),
            "threshold": 0.5,
            "train_skipped": len(self.skipped),
        }

    def training_summary(self) -> dict[str, Any]:
        """Epochs trained and best losses of every stage, for ``describe()``."""
        return {
            stage: {
                "epochs_trained": r.epochs_trained,
                "best_epoch": r.best_epoch,
                "best_val_loss": r.best_val_loss,
                "monitor": r.monitor,
                "best_loss": r.best_loss,
                "stopped_early": r.stopped_early,
                "train_size": r.train_size,
                "val_size": r.val_size,
                "skipped": len(r.skipped),
            }
            for stage, r in self.reports.items()
        }

    def restore_reports(self, summary: Mapping[str, Mapping[str, Any]]) -> None:
        """Rebuild ``reports`` (without histories) from a saved :meth:`training_summary`."""
        self.reports = {
            stage: TrainReport(
                epochs_trained=s["epochs_trained"],
                best_epoch=s["best_epoch"],
                best_loss=s["best_loss"],
                monitor=s["monitor"],
                stopped_early=s["stopped_early"],
                train_size=s["train_size"],
                val_size=s["val_size"],
            )
            for stage, s in summary.items()
        }


class SingleModelDetector(TrainedImageDetector):
    """A trained detector whose learned state is one torch model, built by ``_build(pretrained)``.

    Saves the model (safetensors) plus ``image_size``, ``init_weights`` and the training summary, and loads
    them back onto the run's device; subclasses add fields with :meth:`_extra_state` /
    :meth:`_restore_extra_state`.
    """

    model_file = "model.safetensors"
    state_file = "state.json"
    model: Any = None

    def _build(self, pretrained: bool) -> Any:
        raise NotImplementedError

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _restore_extra_state(self, state: Mapping[str, Any]) -> None:
        """Read back what :meth:`_extra_state` saved."""

    def _save_state(self, folder: Path) -> None:
        save_module(self.model, folder / self.model_file)
        state = {
            "image_size": self.image_size,
            "init_weights": self.init_weights,
            "training": self.training_summary(),
            **self._extra_state(),
        }
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


class ImageClassifierDetector(SingleModelDetector):
    """A single model over the images' input pipeline ``_pipeline(training)``, trained in one BCE stage
    (``classifier``); score = sigmoid of its logit, ``explain`` = Grad-CAM of that logit."""

    def _pipeline(self, training: bool) -> SamplePipeline:
        raise NotImplementedError

    def fit(self, train: Sequence[Sample]) -> Self:
        labels = binary_labels(train, self.name)
        self.image_size = self.resolve_image_size(train)
        self.model = self._build(bool(self.options["pretrained"]))
        self.train_stage("classifier", self.model, train, labels, self._pipeline(True), self._pipeline(False), bce_loss)
        self.model.eval()
        self.fitted = True
        return self

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        return self.fake_probability(self.model, samples, self._pipeline(False))

    def explain(self, samples: Sequence[Sample]) -> list[np.ndarray | None]:
        """Grad-CAM of the fake logit over the model input."""
        self._require_fitted()
        return self.grad_cam(self.model, samples, self._pipeline(False))
