"""Feature reductions fitted on training features: none, PCA, and a small MLP autoencoder.

Every reduction is a :class:`Reduction` with ``fit(X, seed)``, ``transform(X)`` and ``describe()``. Its fitted
state is numpy arrays or a scikit-learn estimator (never a torch module): ``fitted_state()`` gives it as a
:class:`~.state.FittedState` and ``restore(state)`` takes it back, so a fitted probe saves without pickle.
``fitted_types`` names the scikit-learn types that state may hold (its estimator's type first).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from .state import FittedState


class Reduction:
    """What every reduction shares; as it stands, the identity (features pass through, nothing is fitted).

    ``described`` names the options :meth:`describe` reports, :meth:`fitted_summary` adds what fitting found.
    """

    name = "none"
    fitted_types: tuple[str, ...] = ()
    described: tuple[str, ...] = ()

    def fit(self, features: np.ndarray, seed: int = 0) -> Self:
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        return features

    def fitted_summary(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"reduction": self.name, **{key: getattr(self, key) for key in self.described}, **self.fitted_summary()}

    def fitted_state(self) -> FittedState:
        return FittedState()

    def restore(self, state: FittedState) -> Self:
        return self


class NoReduction(Reduction):
    """Features pass through unchanged."""


class PCAReduction(Reduction):
    """scikit-learn PCA to ``n_components`` (capped at what the training set can support)."""

    name = "pca"
    fitted_types = ("sklearn.decomposition._pca.PCA",)
    described = ("n_components", "whiten")

    def __init__(self, n_components: int = 64, whiten: bool = False) -> None:
        self.n_components = int(n_components)
        self.whiten = bool(whiten)
        self.model: Any = None

    def fit(self, features: np.ndarray, seed: int = 0) -> Self:
        from sklearn.decomposition import PCA

        components = max(1, min(self.n_components, features.shape[0], features.shape[1]))
        self.model = PCA(n_components=components, whiten=self.whiten, random_state=seed).fit(features)
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        return self.model.transform(features).astype(np.float32)

    def fitted_summary(self) -> dict[str, Any]:
        return {"n_components_fitted": int(self.model.n_components_) if self.model is not None else None}

    def fitted_state(self) -> FittedState:
        return FittedState(estimators={"model": self.model})

    def restore(self, state: FittedState) -> Self:
        self.model = state.estimators["model"]
        return self


class AutoencoderReduction(Reduction):
    """A two-layer MLP autoencoder (d -> hidden -> latent -> hidden -> d) trained with MSE on the training
    features; the reduced features are the latent codes.

    Training uses torch (Adam, full-batch or mini-batch); the fitted encoder is kept as numpy arrays
    (``weight<i>``, ``bias<i>`` per layer) so transform needs no torch and the probe saves as plain arrays.
    """

    name = "ae"
    described = ("latent_dim", "hidden_dim", "epochs")

    def __init__(
        self,
        latent_dim: int = 32,
        hidden_dim: int = 128,
        epochs: int = 100,
        lr: float = 1e-3,
        batch_size: int = 256,
        weight_decay: float = 1e-5,
    ) -> None:
        self.latent_dim = int(latent_dim)
        self.hidden_dim = int(hidden_dim)
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.batch_size = int(batch_size)
        self.weight_decay = float(weight_decay)
        self.encoder: list[tuple[np.ndarray, np.ndarray]] = []
        self.final_loss: float | None = None

    def fit(self, features: np.ndarray, seed: int = 0) -> Self:
        import torch
        from torch import nn

        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        dim = features.shape[1]
        encoder = nn.Sequential(nn.Linear(dim, self.hidden_dim), nn.ReLU(), nn.Linear(self.hidden_dim, self.latent_dim))
        decoder = nn.Sequential(
            nn.ReLU(), nn.Linear(self.latent_dim, self.hidden_dim), nn.ReLU(), nn.Linear(self.hidden_dim, dim)
        )
        model = nn.Sequential(encoder, decoder)
        optimiser = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        data = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        loss = torch.tensor(float("nan"))
        for _ in range(self.epochs):
            order = torch.randperm(len(data), generator=generator)
            for start in range(0, len(data), self.batch_size):
                batch = data[order[start : start + self.batch_size]]
                optimiser.zero_grad()
                loss = nn.functional.mse_loss(model(batch), batch)
                loss.backward()
                optimiser.step()
        self.final_loss = float(loss.detach())
        self.encoder = [
            (layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy())
            for layer in encoder
            if isinstance(layer, nn.Linear)
        ]
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        out = np.asarray(features, dtype=np.float32)
        for index, (weight, bias) in enumerate(self.encoder):
            out = out @ weight.T + bias
            if index < len(self.encoder) - 1:
                out = np.maximum(out, 0.0)
        return out.astype(np.float32)

    def fitted_summary(self) -> dict[str, Any]:
        return {"final_mse": self.final_loss}

    def fitted_state(self) -> FittedState:
        arrays: dict[str, np.ndarray] = {}
        for index, (weight, bias) in enumerate(self.encoder):
            arrays[f"weight{index}"], arrays[f"bias{index}"] = weight, bias
        return FittedState(values={"final_loss": self.final_loss}, arrays=arrays)

    def restore(self, state: FittedState) -> Self:
        """Take back the two encoder layers (d -> hidden -> latent); other shapes are an error."""
        try:
            encoder = [(state.arrays[f"weight{i}"], state.arrays[f"bias{i}"]) for i in range(2)]
        except KeyError as missing:
            raise ValueError(f"autoencoder reduction: the saved encoder lacks {missing}") from None
        (w0, b0), (w1, b1) = encoder
        if not (
            w0.ndim == w1.ndim == 2
            and w0.shape[0] == w1.shape[1] == self.hidden_dim
            and w1.shape[0] == self.latent_dim
            and b0.shape == (self.hidden_dim,)
            and b1.shape == (self.latent_dim,)
        ):
            raise ValueError(
                f"autoencoder reduction: the saved encoder {w0.shape} -> {w1.shape} does not fit "
                f"hidden_dim={self.hidden_dim}, latent_dim={self.latent_dim}"
            )
        self.encoder = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in encoder]
        self.final_loss = state.values.get("final_loss")
        return self


REDUCTIONS: dict[str, type[Reduction]] = {
    "none": NoReduction,
    "pca": PCAReduction,
    "ae": AutoencoderReduction,
}


def make_reduction(name: str, **options: Any) -> Reduction:
    """A reduction by name (``none``, ``pca``, ``ae``) with its options."""
    try:
        factory = REDUCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown reduction {name!r}; known: {', '.join(REDUCTIONS)}") from None
    return factory(**options)
