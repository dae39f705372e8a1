"""The built-in perturbations: blur, JPEG, colour jitter, blur+jitter, down/up-scaling, noise."""

from __future__ import annotations

from dfzoo import PerturbationSpec, hookimpl
from dfzoo import transforms as t


@hookimpl
def dfzoo_perturbations():
    yield PerturbationSpec(
        name="blur",
        summary="Gaussian blur (sigma, optional sigma_max for a random range)",
        factory=t.gaussian_blur,
        params={"sigma": 1.0},
    )
    yield PerturbationSpec(
        name="jpeg",
        summary="JPEG re-compression (quality, optional quality_min)",
        factory=t.jpeg,
        params={"quality": 75},
    )
    yield PerturbationSpec(
        name="jitter",
        summary="Colour jitter: brightness, contrast, saturation",
        factory=t.colour_jitter,
        params={"brightness": 0.2, "contrast": 0.2, "saturation": 0.2},
    )
    yield PerturbationSpec(
        name="blur_jitter", summary="Colour jitter then Gaussian blur", factory=t.blur_jitter, params={"sigma": 1.0}
    )
    yield PerturbationSpec(
        name="downscale",
        summary="Downscale by `scale` and back up (the preprocessing mode `resize` is another thing)",
        factory=t.downscale,
        params={"scale": 0.5},
    )
    yield PerturbationSpec(
        name="noise", summary="Additive Gaussian noise (std in [0, 1])", factory=t.gaussian_noise, params={"std": 0.02}
    )
