"""A fitted probe as data, saved and loaded without pickle.

Every fitted part (standardiser, reduction, classifier) describes itself as a :class:`FittedState`: JSON
values, plain numpy arrays, and scikit-learn estimators. They go to three files: ``probe.json``,
``probe.npz`` (loaded with ``allow_pickle=False``) and ``probe.skops`` (loaded by skops against the types the
saved configuration can contain, each estimator then checked to be of the one type expected for its slot).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from dfzoo.safeio import UnsafeFileError, load_npz, load_skops, type_name

VALUES_FILE, ARRAYS_FILE, ESTIMATORS_FILE = "probe.json", "probe.npz", "probe.skops"
SEPARATOR = "."


@dataclass
class FittedState:
    """What a fitted part needs to be rebuilt: JSON ``values``, numpy ``arrays``, scikit-learn ``estimators``."""

    values: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    estimators: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def join(cls, parts: dict[str, FittedState], **values: Any) -> FittedState:
        """One state from named parts (``part.key`` for arrays and estimators, nested dicts for values)."""
        return cls(
            values={**values, **{name: part.values for name, part in parts.items()}},
            arrays={f"{name}{SEPARATOR}{k}": v for name, part in parts.items() for k, v in part.arrays.items()},
            estimators={f"{name}{SEPARATOR}{k}": v for name, part in parts.items() for k, v in part.estimators.items()},
        )

    def part(self, name: str) -> FittedState:
        """The state of one part, as it was given to :meth:`join`."""
        prefix = f"{name}{SEPARATOR}"
        return FittedState(
            values=dict(self.values.get(name) or {}),
            arrays={k[len(prefix) :]: v for k, v in self.arrays.items() if k.startswith(prefix)},
            estimators={k[len(prefix) :]: v for k, v in self.estimators.items() if k.startswith(prefix)},
        )


def write_state(folder: Path, state: FittedState, expected: dict[str, tuple[str, ...]]) -> None:
    """Write ``state`` into ``folder`` (an estimator file only when there are estimators). ``expected`` is what
    :func:`read_state` will trust: a state it would refuse (e.g. a classifier option that brings in another
    scikit-learn type) is an error now, not when the probe is loaded."""
    arrays = {name: np.asarray(value) for name, value in state.arrays.items()}
    objects = [name for name, value in arrays.items() if value.dtype == object]
    if objects:
        raise TypeError(f"probe state: object arrays cannot be saved without pickle: {', '.join(objects)}")
    blob = _estimators_blob(state.estimators, expected) if state.estimators or expected else None
    (folder / VALUES_FILE).write_text(json.dumps(state.values, indent=2, sort_keys=True))
    np.savez(folder / ARRAYS_FILE, **arrays)  # type: ignore[arg-type]  # numpy's stub: **arrays could be allow_pickle
    if blob is not None:
        (folder / ESTIMATORS_FILE).write_bytes(blob)


def _estimators_blob(estimators: dict[str, Any], expected: dict[str, tuple[str, ...]]) -> bytes:
    """The skops bytes of ``estimators``, checked to hold the expected slots and only trusted types."""
    import skops.io

    if set(estimators) != set(expected):
        raise TypeError(f"probe state: estimators {sorted(estimators)} where {sorted(expected)} are expected")
    blob = skops.io.dumps(dict(estimators))
    untrusted = set(skops.io.get_untrusted_types(data=blob)) - set(chain.from_iterable(expected.values()))
    problems = [
        f"{slot} is a {type_name(e)}, expected a {expected[slot][0]}"
        for slot, e in estimators.items()
        if type_name(e) != expected[slot][0]
    ] + [f"it holds a {name}" for name in sorted(untrusted)]
    if problems:
        raise TypeError(
            f"probe state would not load: {'; '.join(problems)} (loading trusts only the types the "
            "configuration declares: the classifier's fitted_types)"
        )
    return blob


def read_values(folder: Path) -> dict[str, Any]:
    """The JSON values of a saved probe (read first: they say which types its estimators may have)."""
    path = folder / VALUES_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{folder}: no {VALUES_FILE}; not a saved probe of this dfzoo version (re-fit the probe and save it again)"
        )
    return json.loads(path.read_text())


def read_state(folder: Path, values: dict[str, Any], expected: dict[str, tuple[str, ...]]) -> FittedState:
    """The saved state; ``expected`` maps each estimator slot to the fully qualified types it may hold (its
    estimator's own type first). skops refuses any other type before building anything, and a slot holding
    another estimator than its own is refused too."""
    arrays = load_npz(folder / ARRAYS_FILE)
    estimators: dict[str, Any] = {}
    if expected:
        loaded = load_skops(folder / ESTIMATORS_FILE, trusted=chain.from_iterable(expected.values()))
        if not isinstance(loaded, dict) or set(loaded) != set(expected):
            raise UnsafeFileError(
                f"{folder / ESTIMATORS_FILE}: refused: holds "
                f"{sorted(loaded) if isinstance(loaded, dict) else type_name(loaded)}, "
                f"expected the estimators {sorted(expected)}"
            )
        for slot, estimator in loaded.items():
            if type_name(estimator) != expected[slot][0]:
                raise UnsafeFileError(
                    f"{folder / ESTIMATORS_FILE}: refused: {slot} is a {type_name(estimator)}, "
                    f"expected a {expected[slot][0]}"
                )
        estimators = loaded
    elif (folder / ESTIMATORS_FILE).exists():
        raise UnsafeFileError(f"{folder / ESTIMATORS_FILE}: refused: this probe's configuration has no estimators")
    return FittedState(values=values, arrays=arrays, estimators=estimators)
