"""The built-in perturbations: blur, JPEG, colour jitter, blur+jitter, down/up-scaling, noise."""

from __future__ import annotations

from dfzoo import PerturbationSpec, hookimpl
from dfzoo import transforms as t

# name, factory, default params, summary
PERTURBATIONS = (
    ("blur", t.gaussian_blur, {"sigma": 1.0}, "Gaussian blur (sigma, optional sigma_max for a random range)"),
    ("jpeg", t.jpeg, {"quality": 75}, "JPEG re-compression (quality, optional quality_min)"),
    (
        "jitter",
        t.colour_jitter,
        {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2},
        "Colour jitter: brightness, contrast, saturation",
    ),
    ("blur_jitter", t.blur_jitter, {"sigma": 1.0}, "Colour jitter then Gaussian blur"),
    (
        "downscale",
        t.downscale,
        {"scale": 0.5},
        "Downscale by `scale` and back up (the preprocessing mode `resize` is another thing)",
    ),
    ("noise", t.gaussian_noise, {"std": 0.02}, "Additive Gaussian noise (std in [0, 1])"),
)


@hookimpl
def dfzoo_perturbations():
    for name, factory, params, summary in PERTURBATIONS:
        yield PerturbationSpec(name=name, summary=summary, factory=factory, params=params)
