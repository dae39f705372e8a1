"""A protocol's datasets opened: a registered name or a path (``$VARS`` expanded, relative to the protocol
file) through the layouts module, and the datasets of a cross-dataset protocol side by side as one
:class:`CrossDatasetIndex`. What is done with them is :mod:`dfzoo.benchmark.splits`' business."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dfzoo.data.sample import DatasetIndex

from .protocol import Protocol, ProtocolError

if TYPE_CHECKING:
    from dfzoo.registry import Registry


def dataset_source(protocol: Protocol, registry: Registry, dataset: str | None = None) -> str | Path:
    """A registered self-locating dataset name as is; otherwise a path (``$VARS`` expanded, relative to the
    protocol file). ``dataset`` defaults to the protocol's (training) dataset."""
    text = protocol.dataset if dataset is None else dataset
    if text in registry.names("dataset") and not registry.dataset(text).needs_root:
        return text
    expanded = os.path.expandvars(text)
    unset = re.findall(r"\$\{?(\w+)", expanded)
    if unset:
        raise ProtocolError(
            f"{protocol.name}: dataset {text!r} names environment variable(s) that are not set: {', '.join(unset)}"
        )
    path = Path(expanded).expanduser()
    if not path.is_absolute() and protocol.base_dir:
        path = Path(protocol.base_dir) / path
    return path


@dataclass
class CrossDatasetIndex(DatasetIndex):
    """The datasets of a cross-dataset protocol side by side: ``parts`` are ``(label, index)``, the training
    dataset first; ``train_tested`` says whether the training dataset is also a test dataset. ``samples`` is
    every part's samples; the split rules read the parts."""

    parts: list[tuple[str, DatasetIndex]] = field(default_factory=list)
    train_tested: bool = False

    def fingerprint(self) -> str:
        """A hash of the parts' own fingerprints (each stable across machines) and of their roles."""
        digest = hashlib.sha256(f"train_tested={self.train_tested}\n".encode())
        for label, part in self.parts:
            digest.update(f"{label}\t{part.fingerprint()}\n".encode())
        return digest.hexdigest()[:16]


def open_protocol_dataset(protocol: Protocol, registry: Registry, *, progress: bool = True) -> DatasetIndex:
    """Load the protocol's dataset through the layouts module (or straight from a registered spec); a
    cross-dataset protocol's datasets as one :class:`CrossDatasetIndex`. ``progress=False`` silences a
    loader that shows progress (the zoo's build)."""
    train = _open_one(protocol, registry, protocol.dataset, protocol.layout, protocol.dataset_params, progress)
    if not protocol.test_datasets:
        return train
    train_source = _identity(dataset_source(protocol, registry))
    parts: list[tuple[str, DatasetIndex]] = [(train.name, train)]
    tested = False
    for text in protocol.test_datasets:
        if _identity(dataset_source(protocol, registry, text)) == train_source:
            tested = True
            continue
        index = _open_one(protocol, registry, text, None, {}, progress)
        label = index.name
        taken = {name for name, _ in parts}
        for number in range(2, len(parts) + 2):
            if label not in taken:
                break
            label = f"{index.name}-{number}"
        parts.append((label, index))
    return CrossDatasetIndex(
        name="+".join(label for label, _ in parts),
        layout="cross-dataset",
        root=None,
        samples=[s for _, part in parts for s in part.samples],
        skipped=[item for _, part in parts for item in part.skipped],
        metadata={
            "datasets": [{"label": label, "name": part.name, "layout": part.layout} for label, part in parts],
            "train_tested": tested,
        },
        parts=parts,
        train_tested=tested,
    )


def _identity(source: str | Path) -> str:
    """What makes two spellings of a dataset the same one: a name as is, a path resolved (links, ``..``)."""
    return str(source.resolve()) if isinstance(source, Path) else source


def _open_one(
    protocol: Protocol, registry: Registry, text: str, layout: str | None, params: Mapping[str, Any], progress: bool
) -> DatasetIndex:
    source = dataset_source(protocol, registry, text)
    if isinstance(source, Path) and not source.exists() and not any(sep in text for sep in "/\\.$"):
        named = [n for n in registry.names("dataset") if not registry.dataset(n).needs_root]
        raise ProtocolError(
            f"{protocol.name}: dataset {text!r} is neither an installed named dataset "
            f"({', '.join(named) or 'none installed'}) nor an existing path"
        )
    try:
        from dfzoo.data.layouts import open_dataset
    except ImportError:  # layouts not installed: only registered names or an explicit layout can load
        pass
    else:
        return open_dataset(source, layout=layout, registry=registry, progress=progress, **dict(params))
    if isinstance(source, str):
        return registry.dataset(source).load(None, **dict(params))
    if layout:
        return registry.dataset(layout).load(source, **dict(params))
    raise ProtocolError(f"{protocol.name}: cannot open {source}: give a layout (dfzoo.data.layouts is missing)")


__all__ = ["CrossDatasetIndex", "dataset_source", "open_protocol_dataset"]
