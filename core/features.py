"""Frozen backbones and feature extraction with a shared on-disk cache.

The cache is keyed by backbone, weights identity, preprocessing policy, perturbation and image content
(sha256 of the file), so every detector and every run that needs the same features computes them once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .data.decode import ImageDecodeError
from .data.sample import Sample, content_id
from .paths import features_dir
from .transforms import Normalisation, PreprocessPolicy

if TYPE_CHECKING:
    from .layers import LayerSelection
    from .registry import Registry

log = logging.getLogger(__name__)


class Backbone:
    """A frozen feature extractor that travels with its own input convention (``normalisation``).

    ``embed(batch)`` maps a float32 array [B, 3, S, S] (already normalised) to features [B, D], each row a
    function of its image alone (never of its batch-mates). ``weights_identity`` names the weights
    (``name@sha256:...``) or says ``random-init:<hash>``; ``settings`` are the build choices besides the
    weights that change the vectors (architecture options, pooling, output), part of :attr:`cache_identity`.
    """

    def __init__(
        self,
        name: str,
        normalisation: Normalisation,
        feature_dim: int,
        weights_identity: str,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.normalisation = normalisation
        self.feature_dim = feature_dim
        self.weights_identity = weights_identity
        self.settings = dict(settings or {})

    @property
    def pretrained(self) -> bool:
        return not self.weights_identity.startswith("random-init")

    def vector_settings(self) -> dict[str, Any]:
        """Everything besides name and weights that changes the vectors: the input convention and
        ``settings``; subclasses add what they do at run time (precision, graph rewrites, per-image runs)."""
        n = self.normalisation
        return {"input": [n.size, n.interpolation, list(n.mean), list(n.std)], **self.settings}

    @property
    def cache_identity(self) -> str:
        """The backbone's part of the feature cache key: two backbones with equal identities give equal vectors."""
        settings = json.dumps(self.vector_settings(), sort_keys=True, default=str)
        return "|".join([self.name, self.weights_identity, settings])

    def embed(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def with_layers(self, selection: LayerSelection) -> Backbone:
        """This backbone giving the pooled tokens of intermediate blocks instead (see :mod:`dfzoo.layers`)."""
        from .layers import LayersNotExposed

        raise LayersNotExposed(f"backbone {self.name!r} ({type(self).__name__}) does not expose its blocks")

    def describe(self) -> dict[str, Any]:
        return {"backbone": self.name, "backbone_weights": self.weights_identity, "input_size": self.normalisation.size}


class TorchBackbone(Backbone):
    """A torch module as a backbone: eval mode, no gradients, mixed precision on CUDA."""

    def __init__(
        self,
        name: str,
        module: Any,
        normalisation: Normalisation,
        feature_dim: int,
        weights_identity: str | None = None,
        device: Any = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        import torch

        from .device import pick_device

        self.device = pick_device(device)
        self.module = module.eval().to(self.device)
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        identity = weights_identity or f"random-init:{module_digest(self.module)}"
        super().__init__(name, normalisation, feature_dim, identity, settings)
        self._torch = torch

    def vector_settings(self) -> dict[str, Any]:
        precision = "float16-autocast" if self.device.type == "cuda" else "float32"  # see embed()
        return {**super().vector_settings(), "precision": precision}

    def forward(self, batch: Any) -> Any:
        """Tensor in, tensor out (for detectors that fine-tune on top or need gradients)."""
        return self.module(batch)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        from .device import autocast

        torch = self._torch
        with torch.inference_mode(), autocast(self.device):
            tensor = torch.from_numpy(batch).to(self.device, non_blocking=True)
            out = self.module(tensor)
        return out.float().flatten(1).cpu().numpy()

    def with_layers(self, selection: LayerSelection) -> Backbone:
        from .layers import TorchLayerBackbone

        return TorchLayerBackbone(self, selection)


def module_digest(module: Any) -> str:
    """A short hash of a module's parameters and buffers: identifies a random initialisation honestly."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_backbone(
    name: str,
    *,
    pretrained: bool = True,
    weights_path: str | Path | None = None,
    device: Any = None,
    registry: Registry | None = None,
    layers: str | Sequence[int] | None = None,
    token: str | None = None,
) -> Backbone:
    """Build a backbone by name with resolved weights (or randomly initialised when ``pretrained=False``).

    ``layers`` / ``token`` (or a name suffix, ``"name:layers=5-11,token=cls"``) make it give the pooled tokens
    of intermediate blocks (:mod:`dfzoo.layers`).
    """
    from .layers import selection_from, split_backbone_name
    from .registry import current_registry
    from .weights import resolve

    registry = registry or current_registry()
    base, suffix = split_backbone_name(name)
    selection = selection_from(suffix, layers, token)
    spec = registry.backbone(base)
    weights = None
    if pretrained and spec.weights:
        weights = resolve(registry.weights(spec.weights), weights_path)
    backbone = spec.factory(weights=weights, device=device)
    return backbone if selection is None else backbone.with_layers(selection)


# -- batching --------------------------------------------------------------------------------------------
def prepare_image(sample: Sample, policy: PreprocessPolicy, normalisation: Normalisation) -> np.ndarray:
    """Decode (with the sample view's perturbation) and preprocess one sample to a normalised CHW array."""
    return policy.apply(sample.load(), normalisation)


@dataclass
class Batch:
    indices: list[int]  # positions in the input sequence of the rows of ``array``
    array: np.ndarray  # [len(indices), 3, S, S]
    errors: dict[int, str] = field(default_factory=dict)  # position -> reason, for undecodable samples


def iter_batches(
    samples: Sequence[Sample],
    prepare: Callable[[Sample], np.ndarray],
    batch_size: int,
    positions: Sequence[int] | None = None,
    workers: int = 2,
) -> Iterator[Batch]:
    """Prepare batches on a thread pool, one batch ahead of the consumer (decoding overlaps compute)."""
    positions = list(range(len(samples))) if positions is None else list(positions)
    chunks = [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]

    def build(chunk: list[int]) -> Batch:
        arrays, kept, errors = [], [], {}
        for position in chunk:
            try:
                arrays.append(prepare(samples[position]))
                kept.append(position)
            except ImageDecodeError as error:
                errors[position] = error.reason
        array = np.stack(arrays) if arrays else np.empty((0,), dtype=np.float32)
        return Batch(kept, array, errors)

    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = pool.submit(build, chunks[0])
        for chunk in chunks[1:]:
            following = pool.submit(build, chunk)
            yield pending.result()
            pending = following
        yield pending.result()


# -- cache -----------------------------------------------------------------------------------------------
class FeatureCache:
    """content id -> feature vector, in one SQLite file per (backbone, weights, preprocessing, perturbation).

    SQLite gives atomic commits (an interrupted run keeps every finished batch) and safe concurrent readers.
    """

    def __init__(self, key: str, root: Path | None = None) -> None:
        self.key = key
        self.path = (root or features_dir()) / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS features (content TEXT PRIMARY KEY, vector BLOB)")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('key', ?)", (key,))
        self._db.commit()

    def get_many(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(ids))
        with self._lock:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for content, blob in self._db.execute(
                    f"SELECT content, vector FROM features WHERE content IN ({marks})", chunk
                ):
                    found[content] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO features VALUES (?, ?)",
                [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()],
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM features").fetchone()[0]

    def close(self) -> None:
        self._db.close()


@dataclass
class Features:
    """Features for a sequence of samples; rows of undecodable samples are NaN and listed in ``errors``."""

    vectors: np.ndarray
    errors: dict[int, str]
    cached: int = 0

    @property
    def ok(self) -> np.ndarray:
        mask = np.ones(len(self.vectors), dtype=bool)
        mask[list(self.errors)] = False
        return mask


def content_ids(samples: Sequence[Sample], errors: dict[int, str]) -> list[str | None]:
    """Each sample's content id (the cache key); ``None`` for unreadable files, whose reason goes to ``errors``."""
    ids: list[str | None] = []
    for position, sample in enumerate(samples):
        try:
            ids.append(content_id(sample))
        except OSError as error:
            ids.append(None)
            errors[position] = f"unreadable ({error.strerror or error})"
    return ids


def cache_key(backbone: Backbone, policy: PreprocessPolicy) -> str:
    """The cache file of a (backbone, preprocessing) pair; perturbations live in each sample's content id.

    The backbone part is :attr:`Backbone.cache_identity` (weights, input convention, build and run settings).
    """
    return "|".join([backbone.cache_identity, policy.key])


def extract_features(
    samples: Sequence[Sample],
    backbone: Backbone,
    *,
    policy: PreprocessPolicy = PreprocessPolicy(),
    batch_size: int = 64,
    cache: bool | FeatureCache = True,
    progress: bool = True,
    desc: str | None = None,
) -> Features:
    """Features of ``samples`` through ``backbone``: cached ones are read, the rest computed and stored.

    Each sample's view (the harness's perturbation) is applied by :meth:`Sample.load` and is part of its
    content id, so one cache file per (backbone, preprocessing) serves every perturbation.
    """
    from tqdm.auto import tqdm

    vectors = np.full((len(samples), backbone.feature_dim), np.nan, dtype=np.float32)
    errors: dict[int, str] = {}
    store: FeatureCache | None
    if isinstance(cache, FeatureCache):
        store = cache
    else:
        store = FeatureCache(cache_key(backbone, policy)) if cache else None
    ids = content_ids(samples, errors)
    found = store.get_many([i for i in ids if i is not None]) if store is not None else {}
    todo = []
    for position, cid in enumerate(ids):
        if cid is not None and cid in found:
            vectors[position] = found[cid]
        elif cid is not None:
            todo.append(position)
    cached = len(samples) - len(todo) - len(errors)

    def prepare(sample: Sample) -> np.ndarray:
        return prepare_image(sample, policy, backbone.normalisation)

    bar = tqdm(
        total=len(todo),
        desc=desc or f"features {backbone.name}",
        unit="img",
        disable=not progress or not todo,
        leave=False,
    )
    for batch in iter_batches(samples, prepare, batch_size, todo):
        errors.update(batch.errors)
        if batch.indices:
            out = backbone.embed(batch.array)
            vectors[batch.indices] = out
            if store is not None:
                store.put_many({ids[p]: out[row] for row, p in enumerate(batch.indices)})  # type: ignore[misc]
        bar.update(len(batch.indices) + len(batch.errors))
    bar.close()
    if store is not None and not isinstance(cache, FeatureCache):
        store.close()
    return Features(vectors, errors, cached)
