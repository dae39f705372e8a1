"""Every dfzoo hook, in one module.

Each hook is called once per plugin manager, when the registry is first built, and returns an iterable of
typed specs (see :mod:`dfzoo.spec`). Hooks describe; they do not build models or read data.
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from .spec import BackboneSpec, CommandSpec, DatasetSpec, DetectorSpec, PerturbationSpec, WeightsSpec

PROJECT_NAME = "dfzoo"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def dfzoo_detectors() -> Iterable[DetectorSpec]:
    """Offer detection methods to the zoo.

    Called when the registry is built. Return (or yield) :class:`DetectorSpec` objects; the factory is called
    only when a user or the harness asks for that detector.

    Example::

        import dfzoo

        @dfzoo.hookimpl
        def dfzoo_detectors():
            yield dfzoo.DetectorSpec(
                name="my_probe", summary="Logistic probe on my features",
                factory=make_my_probe, trainable=True, params={"backbone": "efficientnet_lite0"},
            )
    """


@hookspec
def dfzoo_datasets() -> Iterable[DatasetSpec]:
    """Offer dataset layouts or named datasets.

    Called when the registry is built. A layout gives ``detect`` so a folder can be recognised; a named
    dataset (like the built-in zoo) sets ``needs_root=False``.

    Example::

        @dfzoo.hookimpl
        def dfzoo_datasets():
            yield dfzoo.DatasetSpec(name="my_layout", summary="images/<gen>/<label>",
                                    load=load_my_layout, detect=looks_like_my_layout)
    """


@hookspec
def dfzoo_backbones() -> Iterable[BackboneSpec]:
    """Offer frozen feature extractors (CLIP, DINO, ImageNet CNNs, ONNX encoders...).

    Called when the registry is built. The factory receives resolved weights (or ``None`` for a random
    initialisation) and a device, and returns a :class:`dfzoo.features.Backbone` that carries its own
    preprocessing.

    Example::

        @dfzoo.hookimpl
        def dfzoo_backbones():
            yield dfzoo.BackboneSpec(name="my_vit", summary="My ViT-S/16", weights="my_vit_in1k",
                                     factory=make_my_vit, feature_dim=384)
    """


@hookspec
def dfzoo_weights() -> Iterable[WeightsSpec]:
    """Offer pretrained weights and say where they can be found offline and online.

    Called when the registry is built. Nothing is downloaded here; :func:`dfzoo.weights.resolve` walks the
    resolution chain on demand.

    Example::

        @dfzoo.hookimpl
        def dfzoo_weights():
            yield dfzoo.WeightsSpec(name="my_vit_in1k", summary="ImageNet-1k weights", library="file",
                                    files=("model.safetensors",), fetch_hint="curl -o ... https://...")
    """


@hookspec
def dfzoo_perturbations() -> Iterable[PerturbationSpec]:
    """Offer named image perturbations (used for training augmentation and robustness tests).

    Called when the registry is built.

    Example::

        @dfzoo.hookimpl
        def dfzoo_perturbations():
            yield dfzoo.PerturbationSpec(name="posterize", summary="Reduce bits per channel",
                                         factory=make_posterize, params={"bits": 4})
    """


@hookspec
def dfzoo_commands() -> Iterable[CommandSpec]:
    """Offer sub-commands to the ``dfzoo`` command line.

    Called when the CLI starts. A two-word name ("data build-zoo") places the command in a group.

    Example::

        @dfzoo.hookimpl
        def dfzoo_commands():
            yield dfzoo.CommandSpec(name="hello", summary="Say hello",
                                    add_arguments=lambda p: p.add_argument("--who", default="zoo"),
                                    run=lambda args: print("hello", args.who) or 0)
    """
