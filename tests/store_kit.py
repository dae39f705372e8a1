"""A result store written row by row as the harness writes it, with known per-image scores: each row holds
metrics computed by ``metrics.binary_metrics`` from the sidecar it saves, so everything rendered from the store
(leaderboard, report, comparison, ``--check``) works on genuine data."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dfzoo.benchmark import metrics
from dfzoo.benchmark.store import OK, ResultStore

START = datetime(2026, 1, 1, tzinfo=UTC)
N_REAL, N_FAKE = 40, 40


class StoreWriter:
    """Appends rows with sidecars to a store; each row finishes one second after the previous one."""

    def __init__(self, root: Path, images: Path | None = None) -> None:
        self.store = ResultStore(root)
        self.clock = 0
        self.images = images  # when given, ids are paths of small PNGs written there (thumbnails can be made)
        self.reals = np.random.default_rng(0).normal(0.0, 1.0, N_REAL)  # the shared reals, scored once

    def scored(self, generator: str, separation: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """A test set as the harness builds it: the generator's fakes, then the shared reals."""
        fakes = np.random.default_rng([seed, len(generator)]).normal(separation, 1.0, N_FAKE)
        labels = np.r_[np.ones(N_FAKE, int), np.zeros(N_REAL, int)]
        ids = [f"{generator}/{i}.png" for i in range(N_FAKE)] + [f"real/{i}.png" for i in range(N_REAL)]
        if self.images is not None:
            ids = [str(self._image(name)) for name in ids]
        return labels, np.r_[fakes, self.reals], ids

    def _image(self, name: str) -> Path:
        """A 16 px PNG whose colour comes from its name (written once)."""
        path = self.images / name  # type: ignore[operator]
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            colour = np.frombuffer(hashlib.sha256(name.encode()).digest()[:3], dtype=np.uint8)
            Image.fromarray(np.broadcast_to(colour, (16, 16, 3)).copy()).save(path)
        return path

    def row(
        self,
        label: str,
        generator: str,
        separation: float = 3.0,
        *,
        scores: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        status: str = OK,
        protocol: str = "p",
        protocol_hash: str = "cfg1",
        fingerprint: str = "fp1",
        train: Sequence[str] = ("g_train",),
        seen: bool = False,
        family: str = "gan",
        policy: str = metrics.DETECTOR_POLICY,
        threshold: float = 0.5,
        threshold_fpr: float | None = None,
        perturbation: str = "none",
        bootstrap: int = 200,
        seed: int = 0,
        with_ids: bool = True,
        finished_at: str | None = None,
        params: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Append one row (``fields`` are extra row fields, e.g. ``protocol_group``) and its sidecar."""
        self.clock += 1
        row_id = uuid.uuid4().hex[:16]
        row: dict[str, Any] = {
            "row_id": row_id,
            "key": f"{protocol_hash}|{label}|{generator}|{perturbation}",
            "status": status,
            "protocol": protocol,
            "protocol_hash": protocol_hash,
            "label": label,
            "detector": label.split("[")[0],
            "params_hash": f"h-{label}",
            "dataset": {"name": "d", "fingerprint": fingerprint},
            "train_generators": list(train),
            "test_generator": generator,
            "test_family": family,
            "seen_in_training": seen,
            "test_perturbation": perturbation,
            "threshold": threshold,
            "threshold_policy": policy,
            "threshold_fpr": threshold_fpr,
            "bootstrap": bootstrap,
            "seed": seed,
            "finished_at": finished_at or (START + timedelta(seconds=self.clock)).isoformat(timespec="seconds"),
            "metrics": {},
            **({"params": params} if params is not None else {}),
            **fields,
        }
        if status == OK:
            test_labels, test_scores, ids = self.scored(generator, separation)
            test_labels = test_labels if labels is None else labels
            test_scores = test_scores if scores is None else scores
            ids = ids if labels is None else [f"{generator}/x{i}" for i in range(len(test_labels))]
            row["metrics"] = metrics.binary_metrics(
                test_labels, test_scores, threshold, n_bootstrap=bootstrap, seed=seed
            )
            self.store.save_scores(row_id, test_labels, test_scores, ids=ids if with_ids else None)
        else:
            row["error"] = {"stage": "score", "type": "RuntimeError", "message": "boom"}
        self.store.append(row)
        return row


REPORT_DETECTORS = {  # label (detector name before "[") -> (params, separation on clean images)
    "probe[backbone=a]": ({"backbone": "a", "C": 1.0}, 3.0),
    "probe[backbone=b]": ({"backbone": "b", "C": 1.0}, 1.5),
    "weak": ({"size": 8}, 0.3),
}
SWEEP = ("jpeg:quality=90", "jpeg:quality=50")


def report_store(root: Path, images: Path) -> StoreWriter:
    """A store with every shape the report renders: protocol ``p`` (a seen generator, two families, a JPEG
    sweep), a leave-one-out group ``logo`` (two folds) and a cross-dataset protocol ``xd``."""
    writer = StoreWriter(root, images)
    for label, (params, separation) in REPORT_DETECTORS.items():
        common = {"params": params, "policy": metrics.TRAIN_REAL_QUANTILE_POLICY, "threshold": 1.0}
        for generator, family in (("g_train", "gan"), ("g1", "gan"), ("g2", "gan"), ("d1", "diffusion")):
            seen = generator == "g_train"
            for step, perturbation in enumerate(("none", *SWEEP)):
                shift = separation * (1.0 - 0.3 * step) + (1.0 if seen else 0.0)
                writer.row(label, generator, shift, family=family, seen=seen, perturbation=perturbation, **common)
        for held in ("g1", "g2"):
            writer.row(
                label, held, separation, protocol=f"logo/loo-{held}", protocol_hash=f"logo-{held}",
                protocol_group="logo", held_out=held, test_dataset="d", **common,
            )  # fmt: skip
        for generator, dataset in (("g1", "zoo"), ("other/x", "other")):
            writer.row(
                label, generator, separation * 0.8, protocol="xd", protocol_hash="xd", test_dataset=dataset, **common
            )
        writer.row(label, "g1", protocol="broken", protocol_hash="b", status="error")
    return writer
