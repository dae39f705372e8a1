"""UnivFD (Ojha et al., CVPR 2023, arXiv:2302.10174): a linear probe and nearest neighbours on frozen CLIP
features. The backbone is selectable; the paper's is OpenAI CLIP ViT-L/14."""

from __future__ import annotations

from dfzoo import DetectorSpec, Param, hookimpl

PAPER = "Ojha et al., Towards Universal Fake Image Detectors, CVPR 2023 (arXiv:2302.10174)"
BACKBONE_SCHEMA = {"backbone": Param(types=(str,), names="backbone")}  # checked against the registry up front


def _make_probe(**params):
    from dfzoo.plugins.detectors._univfd import LinearProbe

    return LinearProbe(**params)


def _make_nn(**params):
    from dfzoo.plugins.detectors._univfd import NearestNeighbourCosine

    return NearestNeighbourCosine(**params)


@hookimpl
def dfzoo_detectors():
    common = {"backbone": "clip_vit_l14", "pretrained": True, "weights_path": None, "batch_size": 64}
    yield DetectorSpec(
        name="clip_probe",
        factory=_make_probe,
        paper=PAPER,
        trainable=True,
        summary="UnivFD linear probe: logistic regression on frozen CLIP image features",
        params={**common, "C": 1.0, "normalize": True, "max_iter": 2000},
        smoke_params={"backbone": "tiny_cnn"},
        param_schema=BACKBONE_SCHEMA,
    )
    yield DetectorSpec(
        name="nn_cosine",
        factory=_make_nn,
        paper=PAPER,
        trainable=True,
        summary="UnivFD nearest neighbour: cosine similarity to the nearest fake minus the nearest real feature",
        params={**common, "k": 1},
        smoke_params={"backbone": "tiny_cnn"},
        param_schema=BACKBONE_SCHEMA,
    )
