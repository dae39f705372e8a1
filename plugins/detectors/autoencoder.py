"""A convolutional autoencoder whose latent codes feed a logistic-regression classifier.

Stage 1 trains the autoencoder with a mean-squared reconstruction loss (inputs scaled to [-1, 1]) on the
training images: all of them (``ae_data="all"``, default) or the reals only (``ae_data="real"``, the natural
choice when scoring by reconstruction error: fakes then reconstruct worse). Stage 2 freezes it and fits a
standardised logistic regression on pooled latent codes: each latent channel's mean over a ``latent_grid`` x
``latent_grid`` grid (default 1: the global mean) plus its spatial standard deviation, so the code length
does not depend on the image size (a global code also overfits less than a spatial one on small training
sets).

Two scores: ``score="classifier"`` (default) is the classifier's probability of fake (threshold 0.5);
``score="reconstruction"`` is the per-image mean squared reconstruction error in [-1, 1] units (higher =
worse reconstructed = more likely fake); its threshold is the cut with the best balanced accuracy on the
training errors (for this score a tighter bottleneck, e.g. ``latent_channels=4``, and ``ae_data="real"``
suit best). Both are always available through
:meth:`AutoencoderDetector.scores`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dfzoo import Param, hookimpl
from dfzoo.data.sample import Sample
from dfzoo.training import TRAIN_PARAMS, TrainedImageDetector, trained_detector_spec

DEFAULTS: dict[str, Any] = {
    "latent_channels": 16,
    "width": 32,
    "latent_grid": 1,
    "ae_data": "all",
    "score": "classifier",
    "C": 1.0,
    "augment": "flip",
    **TRAIN_PARAMS,
    "lr": 1e-3,
    "epochs": 5,
}
DOWNSAMPLE = 4  # two stride-2 convolutions: inputs are rounded up to a multiple of 4 pixels


def build_autoencoder(width: int, latent_channels: int, latent_grid: int) -> Any:
    """Encoder: conv(3->w), conv s2 (w->2w), conv s2 (2w->4w), conv (4w->latent); the decoder mirrors it."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, **kw: Any) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, bias=False, **kw), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def up(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class ConvAutoencoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(
                block(3, width, kernel_size=3, padding=1),
                block(width, 2 * width, kernel_size=4, stride=2, padding=1),
                block(2 * width, 4 * width, kernel_size=4, stride=2, padding=1),
                nn.Conv2d(4 * width, latent_channels, 3, padding=1),
            )
            self.decoder = nn.Sequential(
                block(latent_channels, 4 * width, kernel_size=3, padding=1),
                up(4 * width, 2 * width),
                up(2 * width, width),
                nn.Conv2d(width, 3, 3, padding=1),
                nn.Tanh(),
            )
            self.pool = nn.AdaptiveAvgPool2d(latent_grid)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.decoder(self.encoder(x))

        def code(self, x: torch.Tensor) -> torch.Tensor:
            """Pooled latent code [B, C * (grid^2 + 1)] and nothing else."""
            z = self.encoder(x)
            return torch.cat([self.pool(z).flatten(1), z.flatten(2).std(dim=2)], dim=1)

        def code_and_error(self, x: torch.Tensor) -> torch.Tensor:
            """[B, code + 1]: the pooled code and, last, the mean squared reconstruction error."""
            z = self.encoder(x)
            error = (self.decoder(z).float() - x.float()).pow(2).flatten(1).mean(dim=1, keepdim=True)
            return torch.cat([self.pool(z).flatten(1), z.flatten(2).std(dim=2), error.to(z.dtype)], dim=1)

    return ConvAutoencoder()


def balanced_threshold(values: np.ndarray, labels: np.ndarray) -> float:
    """The cut on ``values`` (fake above) with the best balanced accuracy on the training data: midpoints
    between sorted values are tried, ties go to the lowest cut."""
    order = np.unique(values)
    cuts = np.concatenate([[order[0] - 1.0], (order[1:] + order[:-1]) / 2.0]) if len(order) > 1 else order
    real, fake = values[labels == 0], values[labels == 1]
    best, best_cut = -1.0, float(cuts[0])
    for cut in cuts:
        accuracy = ((real <= cut).mean() + (fake > cut).mean()) / 2.0
        if accuracy > best:
            best, best_cut = accuracy, float(cut)
    return best_cut


def reconstruction_loss(model: Any, inputs: Any, targets: Any) -> Any:
    """Mean squared error between the input and its reconstruction (targets are not used)."""
    return (model(inputs).float() - inputs.float()).pow(2).mean()


class AutoencoderDetector(TrainedImageDetector):
    """Convolutional autoencoder; logistic regression on its latent codes (or reconstruction error).

    Convolutional autoencoder + logistic regression on its frozen latent codes."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if params.get("score", "classifier") not in ("classifier", "reconstruction"):
            raise ValueError(f"score must be 'classifier' or 'reconstruction', got {params.get('score')!r}")
        if params.get("ae_data", "all") not in ("all", "real"):
            raise ValueError(f"ae_data must be 'all' or 'real', got {params.get('ae_data')!r}")
        self.model: Any = None
        self.head: dict[str, np.ndarray] = {}  # mean, scale, coef, intercept of the standardised logistic head

    def _build(self) -> Any:
        import torch

        p = self.params
        torch.manual_seed(self.context.seed)
        return build_autoencoder(int(p["width"]), int(p["latent_channels"]), int(p["latent_grid"]))

    def _pipeline(self, training: bool):
        from dfzoo.training import augment_preset
        from dfzoo.transforms import Normalisation

        norm = Normalisation(size=int(self.image_size or 0), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        return self.pipeline(norm, training=training, augment=augment_preset(self.params["augment"]))

    def _codes(self, samples: Sequence[Sample], training: bool) -> np.ndarray:
        """[N, code + 1] codes and reconstruction errors (NaN rows for undecodable images)."""
        self.model.to(self.device).eval()
        width = int(self.params["latent_channels"]) * (int(self.params["latent_grid"]) ** 2 + 1) + 1
        pipeline = self._pipeline(False)
        if training:  # the train perturbation, no augmentation: codes as the classifier will see them
            pipeline = self.pipeline(pipeline.normalisation, training=True)
        return self.run_model(
            self.model.code_and_error, samples, pipeline, width=width, desc="train codes" if training else "codes"
        )

    def fit(self, train: Sequence[Sample]) -> AutoencoderDetector:
        from sklearn.linear_model import LogisticRegression

        from dfzoo.training import binary_labels

        labels = np.asarray(binary_labels(train, self.name))
        self.image_size = self.resolve_image_size(train, multiple=DOWNSAMPLE)
        self.model = self._build()
        ae_train = [s for s in train if s.label == 0] if self.params["ae_data"] == "real" else list(train)
        self.train_stage(
            "autoencoder",
            self.model,
            ae_train,
            [s.label for s in ae_train],
            self._pipeline(True),
            self._pipeline(False),
            reconstruction_loss,
        )
        self.model.eval()
        out = self._codes(train, training=True)
        codes, errors = out[:, :-1], out[:, -1]
        ok = ~np.isnan(out).any(axis=1)
        if len(set(labels[ok].tolist())) < 2:
            raise ValueError(f"{self.name}: fewer than two classes among decodable training images")
        x = codes[ok]
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale < 1e-8] = 1.0
        classifier = LogisticRegression(C=float(self.params["C"]), max_iter=5000)
        classifier.fit((x - mean) / scale, labels[ok])
        self.head = {
            "mean": mean,
            "scale": scale,
            "coef": classifier.coef_.ravel().astype(np.float64),
            "intercept": np.asarray(classifier.intercept_, dtype=np.float64),
            "error_threshold": np.asarray(balanced_threshold(errors[ok], labels[ok])),
        }
        self.fitted = True
        return self

    def scores(self, samples: Sequence[Sample]) -> dict[str, np.ndarray]:
        """Both scores: ``classifier`` (probability of fake) and ``reconstruction`` (mean squared error)."""
        self._require_fitted()
        out = self._codes(samples, training=False)
        codes, error = out[:, :-1], out[:, -1]
        z = (codes - self.head["mean"]) / self.head["scale"]
        logits = z @ self.head["coef"] + self.head["intercept"][0]
        return {"classifier": 1.0 / (1.0 + np.exp(-logits)), "reconstruction": error}

    def score(self, samples: Sequence[Sample]) -> np.ndarray:
        return self.scores(samples)[self.params["score"]]

    def describe(self) -> dict[str, Any]:
        p = self.params
        return {
            "arch": f"conv_autoencoder(width={p['width']}, latent_channels={p['latent_channels']}, "
            f"downsample={DOWNSAMPLE})",
            "init_weights": "random-init",
            "image_size": self.image_size,
            "ae_data": p["ae_data"],
            "code": f"latent avg-pooled to {p['latent_grid']}x{p['latent_grid']} + per-channel std",
            "classifier": f"standardised logistic regression (C={p['C']})",
            "score": p["score"],
            "threshold": 0.5
            if p["score"] == "classifier"
            else float(self.head["error_threshold"])
            if self.head
            else None,
            "preprocess": self.context.preprocess.key,
            "augment": p["augment"],
            "optimiser": p["optimiser"],
            "lr": p["lr"],
            "batch_size": p["batch_size"],
            "epochs": p["epochs"],
            "training": self.training_summary(),
            "train_skipped": len(self.skipped),
        }

    def _save_state(self, folder: Path) -> None:
        from dfzoo.training import save_module

        save_module(self.model, folder / "autoencoder.safetensors")
        np.savez(folder / "head.npz", **self.head)  # type: ignore[arg-type]  # numpy's stub: **arrays could be allow_pickle
        state = {"image_size": self.image_size, "training": self.training_summary()}
        (folder / "state.json").write_text(json.dumps(state, indent=2))

    def _load_state(self, folder: Path) -> None:
        from dfzoo.safeio import load_npz
        from dfzoo.training import load_module

        state = json.loads((folder / "state.json").read_text())
        self.image_size = state["image_size"]
        self.model = self._build()
        load_module(self.model, folder / "autoencoder.safetensors")
        self.model.eval()
        self.head = load_npz(folder / "head.npz")
        self.restore_reports(state["training"])


@hookimpl
def dfzoo_detectors():
    yield trained_detector_spec(
        "autoencoder",
        AutoencoderDetector,
        params=DEFAULTS,
        weight_params=(),
        tags=("autoencoder",),
        smoke={"width": 8, "latent_channels": 4},
        schema={"score": Param(choices=("classifier", "reconstruction")), "ae_data": Param(choices=("all", "real"))},
    )
