"""The two UnivFD detectors, on :class:`dfzoo.frozen.FrozenFeatureDetector`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dfzoo.frozen import FrozenFeatureDetector
from dfzoo.safeio import load_npz


def l2_normalise(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


class LinearProbe(FrozenFeatureDetector):
    """Logistic regression on (optionally L2-normalised) frozen features; score = P(fake)."""

    def fit_features(self, features: np.ndarray, labels: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        x = l2_normalise(features) if self.params["normalize"] else features
        model = LogisticRegression(C=self.params["C"], max_iter=self.params["max_iter"])
        model.fit(x, labels)
        self.coef = model.coef_.ravel().astype(np.float64)
        self.intercept = float(model.intercept_[0])

    def score_features(self, features: np.ndarray) -> np.ndarray:
        x = l2_normalise(features) if self.params["normalize"] else features
        return 1.0 / (1.0 + np.exp(-(x.astype(np.float64) @ self.coef + self.intercept)))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "classifier": "logistic_regression", "threshold": 0.5}

    def _save_state(self, folder: Path) -> None:
        np.savez(folder / "probe.npz", coef=self.coef, intercept=self.intercept)

    def _load_state(self, folder: Path) -> None:
        state = load_npz(folder / "probe.npz")
        self.coef, self.intercept = state["coef"], float(state["intercept"])


class NearestNeighbourCosine(FrozenFeatureDetector):
    """UnivFD's nearest neighbour: score = mean top-k cosine similarity to fakes minus that to reals.

    Positive means the image sits closer to the fake training features: the threshold is 0.
    """

    def fit_features(self, features: np.ndarray, labels: np.ndarray) -> None:
        normalised = l2_normalise(features.astype(np.float32))
        self.real_bank = normalised[labels == 0]
        self.fake_bank = normalised[labels == 1]

    def score_features(self, features: np.ndarray) -> np.ndarray:
        queries = l2_normalise(features.astype(np.float32))
        return self._top_similarity(queries, self.fake_bank) - self._top_similarity(queries, self.real_bank)

    def _top_similarity(self, queries: np.ndarray, bank: np.ndarray, chunk: int = 4096) -> np.ndarray:
        k = max(1, min(int(self.params["k"]), len(bank)))
        best = np.empty(len(queries), dtype=np.float64)
        for start in range(0, len(queries), chunk):
            sims = queries[start : start + chunk] @ bank.T
            top = np.partition(sims, -k, axis=1)[:, -k:] if k < sims.shape[1] else sims
            best[start : start + chunk] = top.mean(axis=1)
        return best

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "classifier": f"nearest_neighbour_cosine_k{self.params['k']}", "threshold": 0.0}

    def _save_state(self, folder: Path) -> None:
        np.savez(folder / "banks.npz", real=self.real_bank, fake=self.fake_bank)

    def _load_state(self, folder: Path) -> None:
        state = load_npz(folder / "banks.npz")
        self.real_bank, self.fake_bank = state["real"], state["fake"]
