"""Loading saved state without running code: the one home of every loader for files a user may be handed.

A saved detector, a training checkpoint or a score sidecar may come from someone else. Pickle (and joblib,
and ``torch.load`` without ``weights_only``) runs whatever the file says while loading, so nothing here
unpickles: numpy arrays load with ``allow_pickle=False``, torch checkpoints with ``weights_only=True``,
scikit-learn models through skops against an explicit list of trusted types. Whatever cannot be loaded that
way is refused with :class:`UnsafeFileError` before any of it is read.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".pck")
PICKLE_PROTO = 0x80  # the first byte of every pickle of protocol 2 or later (joblib and torch.save's legacy format too)


class UnsafeFileError(ValueError):
    """A file that could run code when loaded (a pickle, an object array, an untrusted type) was refused."""


def looks_like_pickle(path: Path) -> bool:
    """True for a file named like a pickle or starting with pickle's protocol opcode (read: two bytes)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == PICKLE_PROTO and 2 <= head[1] <= 5


def refuse_pickles(folder: str | Path) -> None:
    """Raise :class:`UnsafeFileError` when ``folder`` (or a folder below it) holds a pickle; read nothing else."""
    root = Path(folder)
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and looks_like_pickle(p))
    if found:
        raise UnsafeFileError(
            f"{root}: refused to load: {', '.join(found)} "
            f"{'is a pickle' if len(found) == 1 else 'are pickles'}, which can run code when "
            "loaded; dfzoo saves without pickle: re-fit the detector and save it again"
        )


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, loaded with ``allow_pickle=False`` (object arrays are refused)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise
        raise UnsafeFileError(f"{path}: refused: it holds object arrays, which load through pickle") from None


def torch_load(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a file holding anything but tensors and plain
    containers is refused with :class:`UnsafeFileError` (nothing of it is built)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UnsafeFileError(
            f"{path}: refused: it holds objects other than tensors and plain containers ({reason})"
        ) from None


def load_skops(path: str | Path, trusted: Iterable[str]) -> Any:
    """A skops file, loaded only if every type in it is in skops's own safe list or in ``trusted`` (fully
    qualified names, e.g. ``sklearn.tree._tree.Tree``); anything else is refused before it is built."""
    import zipfile

    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    trusted = sorted(set(trusted))
    try:
        return skops.io.load(path, trusted=trusted)
    except UntrustedTypesFoundException as error:
        found = str(error).strip().splitlines()[0]  # "Untrusted types found in the file: [...]."
        raise UnsafeFileError(f"{path}: refused: {found[0].lower()}{found[1:]}") from None
    except zipfile.BadZipFile:
        raise UnsafeFileError(f"{path}: refused: not a skops file") from None


def type_name(value: Any) -> str:
    """``module.QualName`` of a value's type, as skops names trusted types."""
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"
