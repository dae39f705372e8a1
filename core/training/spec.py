"""The :class:`~dfzoo.spec.DetectorSpec` of a detector trained with :mod:`dfzoo.training`.

What every such detector shares is filled in here, so a plugin states only what is its own: it is trainable,
tagged ``trained``, asks a cluster for a GPU where there is one, accepts the training parameters
(:data:`TRAIN_SCHEMA`) and has a one-epoch smoke run (:data:`SMOKE_TRAIN_PARAMS`) under its own smoke values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..spec import DetectorSpec, Param, Resources
from .config import SMOKE_TRAIN_PARAMS, TRAIN_SCHEMA

if TYPE_CHECKING:
    from ..detector import Detector

GPU_WHERE_AVAILABLE = Resources(gpus=1)  # a cluster without GPUs still runs the job on CPU


def trained_detector_spec(
    name: str,
    factory: Callable[..., Detector],
    *,
    smoke: Mapping[str, Any] | None = None,
    schema: Mapping[str, Param] | None = None,
    tags: tuple[str, ...] = (),
    **fields: Any,
) -> DetectorSpec:
    """A trained detector's spec: ``smoke`` and ``schema`` extend the shared smoke run and training schema,
    ``tags`` follow ``trained``; ``fields`` are any other :class:`DetectorSpec` fields (``params``, ``paper``,
    ``weight_params``, ``summary``, ``resources``...)."""
    fields.setdefault("resources", GPU_WHERE_AVAILABLE)
    return DetectorSpec(
        name=name,
        factory=factory,
        trainable=True,
        tags=("trained", *tags),
        smoke_params={**SMOKE_TRAIN_PARAMS, **(smoke or {})},
        param_schema={**TRAIN_SCHEMA, **(schema or {})},
        **fields,
    )
