"""A DenseNet trained on log Fourier spectra: generators leave periodic traces (up-sampling grids, spectral
peaks) that stand out in the frequency domain (after Frank et al., ICML 2020, arXiv:2003.08685, and
Dzanic et al., NeurIPS 2020, who classify spectra).

Input: the image in grey levels (ITU-R BT.601 luma, values in [0, 1]) at the model's input size, its 2-D FFT,
``fftshift`` (zero frequency at the centre), ``log(|F| + 1e-6)``, then **per-image standardisation** (zero
mean, unit standard deviation over the spectrum): a single channel, so brightness and contrast changes
scale out and the classifier sees the spectrum's shape. The network is a timm DenseNet (default
``densenet121``) with one input channel and one logit; ``growth_rate`` / ``block_config`` give smaller
configurations for a CPU (e.g. ``growth_rate=12, block_config=[3, 6, 12, 8]``, or ``"3-6-12-8"`` on the
command line). Random initialisation by
default (spectra are not ImageNet photographs); ``pretrained=True`` loads ImageNet weights with the first
convolution summed over RGB. Score = sigmoid probability of fake.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from dfzoo import Param, hookimpl
from dfzoo.backbones import timm_weights
from dfzoo.data.sample import Sample
from dfzoo.training import (
    ImageClassifierDetector,
    SamplePipeline,
    classifier_params,
    trained_detector_spec,
)

LUMA = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)

DEFAULTS = classifier_params("densenet121", pretrained=False, growth_rate=None, block_config=None, lr=1e-3)


def log_spectrum(array: np.ndarray) -> np.ndarray:
    """CHW RGB array in [0, 1] -> 1xHxW standardised log-magnitude spectrum (zero frequency centred)."""
    grey = np.tensordot(LUMA, array, axes=(0, 0))
    magnitude = np.abs(np.fft.fftshift(np.fft.fft2(grey)))
    spectrum = np.log(magnitude + 1e-6)
    spectrum = (spectrum - spectrum.mean()) / (spectrum.std() + 1e-6)
    return spectrum[None].astype(np.float32)


class FFTDenseNet(ImageClassifierDetector):
    """DenseNet on standardised log Fourier spectra of grey images (frequency artefacts).

    A one-channel DenseNet over standardised log spectra, trained with BCE; ``explain`` maps sit on the
    spectrum (see :meth:`explain_view`)."""

    def _create_kwargs(self) -> dict[str, Any]:
        p = self.params
        kwargs: dict[str, Any] = {"in_chans": 1}
        if p["growth_rate"]:
            kwargs["growth_rate"] = int(p["growth_rate"])
        blocks = p["block_config"]
        if blocks:  # a list, or a string such as "3-6-12-8" (what a command line can pass)
            kwargs["block_config"] = tuple(
                int(b) for b in (re.findall(r"\d+", blocks) if isinstance(blocks, str) else blocks)
            )
        return kwargs

    def _build(self, pretrained: bool) -> Any:
        return self.create_timm_classifier(1, pretrained, **self._create_kwargs())

    def _pipeline(self, training: bool) -> SamplePipeline:
        from dfzoo.training import augment_preset
        from dfzoo.transforms import Normalisation

        size = int(self.image_size or 0)
        raw = Normalisation(size=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        return self.pipeline(raw, training=training, augment=augment_preset(self.params["augment"]), post=log_spectrum)

    def explain_view(self, samples: Sequence[Sample]) -> list[Any]:
        """The spectra the maps refer to, as grey images at the model's input size (None if undecodable)."""
        from PIL import Image

        from dfzoo.data.decode import ImageDecodeError

        pipe = self._pipeline(False)
        views: list[Any] = []
        for sample in samples:
            try:
                spectrum = pipe.load(sample)[0]
            except ImageDecodeError:
                views.append(None)
                continue
            low, high = float(spectrum.min()), float(spectrum.max())
            scaled = (spectrum - low) / (high - low) if high > low else np.zeros_like(spectrum)
            views.append(Image.fromarray((scaled * 255 + 0.5).astype(np.uint8), mode="L").convert("RGB"))
        return views

    def describe(self) -> dict[str, Any]:
        return {
            **self.describe_training(),
            "arch_kwargs": self._create_kwargs(),
            "input": "grey fftshift log|F| standardised per image",
        }


@hookimpl
def dfzoo_weights():
    yield timm_weights(
        "densenet121_in1k", "densenet121.tv_in1k", "timm DenseNet-121 ImageNet-1k (torchvision)", "BSD-3-Clause"
    )


@hookimpl
def dfzoo_detectors():
    yield trained_detector_spec(
        "fft_densenet",
        FFTDenseNet,
        paper="after Frank et al. 2020 (arXiv:2003.08685)",
        params=DEFAULTS,
        weight_params=("weights",),
        tags=("cnn", "frequency"),
        smoke={"growth_rate": 8, "block_config": [2, 2, 2, 2]},
        schema={
            "growth_rate": Param(types=(int,), optional=True),
            "block_config": Param(types=(list, tuple, str), optional=True),
        },
    )
