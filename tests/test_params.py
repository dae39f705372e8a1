"""Detector parameters: declared types and choices, checked before any work; the detector owns its params."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

import dfzoo
from dfzoo.benchmark.entries import resolve_detectors
from dfzoo.benchmark.protocol import ProtocolError, parse_value, protocol_from_flags
from dfzoo.device import DeviceError, pick_device
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry, RegistryError, use_registry
from dfzoo.spec import Param, ParamError
from tests.kit import SpecPlugin


def builtin_specs() -> list[dfzoo.DetectorSpec]:
    return [e.spec for e in Registry(get_plugin_manager(autoload=False)).entries("detector")]


@pytest.mark.parametrize("spec", builtin_specs(), ids=lambda s: s.name)
def test_builtin_defaults_and_smoke_params_pass_their_own_schema(spec):
    assert spec.check_params({}) == dict(spec.params)
    spec.check_params(dict(spec.smoke_params))
    for name, declared in spec.param_schema.items():
        assert name in spec.params, f"{spec.name}: schema names unknown parameter {name}"
        for choice in declared.choices:
            spec.check_params({name: choice})


def test_closed_sets_list_the_allowed_values(registry):
    probe = registry.detector("probe")
    with pytest.raises(ParamError, match=r"unknown classifier 'svn'; allowed: bagging, .*svm.*; did you mean svm"):
        probe.check_params({"classifier": "svn"})
    with pytest.raises(ParamError, match="unknown reduction 'umap'; allowed: none, pca, ae"):
        probe.check_params({"reduction": "umap"})
    with pytest.raises(ParamError, match=r"unknown distance 'l3'; allowed: lpips_vgg_0.*l2"):
        registry.detector("aeroblade").check_params({"distance": "l3"})
    with pytest.raises(ParamError, match=r"unknown optimiser 'adamm'.*adam, adamw, sgd"):
        registry.detector("resnet_finetune").check_params({"optimiser": "adamm"})
    with pytest.raises(ParamError, match="unknown augment 'flips'"):
        registry.detector("dire").check_params({"augment": "flips"})


def test_types_come_from_defaults_where_not_declared(registry):
    nn = registry.detector("nn_cosine")
    with pytest.raises(ParamError, match=r"k must be int, got 'three' \(str\)"):
        nn.check_params({"k": "three"})
    with pytest.raises(ParamError, match="k must be int, got True"):
        nn.check_params({"k": True})  # a bool is never a number
    with pytest.raises(ParamError, match=r"must be int, got 2\.5"):
        nn.check_params({"k": 2.5})
    assert registry.detector("clip_probe").check_params({"C": 2})["C"] == 2  # an int is a fine float
    with pytest.raises(ParamError, match="pretrained must be bool"):
        nn.check_params({"pretrained": "yes"})
    with pytest.raises(ParamError, match="k cannot be none; expected int"):
        nn.check_params({"k": None})


def test_none_is_a_word_or_none_as_the_parameter_says(registry):
    probe = registry.detector("probe")
    assert probe.check_params({"reduction": "none"})["reduction"] == "none"  # a choice named none
    assert probe.check_params({"weights_path": "none"})["weights_path"] is None  # default None: None allowed
    assert probe.check_params({"n_components": "null"})["n_components"] is None
    aeroblade = registry.detector("aeroblade")
    assert aeroblade.check_params({"fallback": "none"})["fallback"] is None  # a string that may be None
    with pytest.raises(ParamError, match="unknown distance 'none'"):
        aeroblade.check_params({"distance": "none"})  # a string that may not
    assert registry.detector("resnet_finetune").check_params({"preset": "none"})["preset"] is None
    assert parse_value("none") == "none" and parse_value("3") == 3 and parse_value("[1, 2]") == [1, 2]


def test_cli_reduction_none_reaches_the_probe_as_the_word(registry, tmp_path):
    protocol = protocol_from_flags(
        dataset=str(tmp_path),
        detectors=["probe"],
        params={"reduction": parse_value("none"), "weights_path": parse_value("none")},
    )
    [resolved] = resolve_detectors(protocol, registry)
    assert resolved.params["reduction"] == "none" and resolved.params["weights_path"] is None
    detector = dfzoo.load_detector("probe", **resolved.params)
    assert detector.params["reduction"] == "none" and detector.pipeline.reduction_name == "none"


def test_resolve_detectors_checks_every_value(registry, tmp_path):
    protocol = protocol_from_flags(dataset=str(tmp_path), detectors=["probe"], params={"classifier": "svn"})
    with pytest.raises(ProtocolError, match=r"cli-.*: detector 'probe': unknown classifier 'svn'"):
        resolve_detectors(protocol, registry)
    wildcard = protocol_from_flags(dataset=str(tmp_path), params={"reduction": "umap"})  # "*" reaches probe
    with pytest.raises(ProtocolError, match="unknown reduction 'umap'"):
        resolve_detectors(wildcard, registry)


def test_an_unknown_backbone_fails_before_any_work(registry, tmp_path):
    """A typo in a backbone name is a protocol error, not an error row after the data is read."""
    typo = protocol_from_flags(dataset=str(tmp_path), detectors=["clip_probe"], params={"backbone": "efficientnet"})
    with pytest.raises(ProtocolError, match=r"'clip_probe': backbone: no backbone named 'efficientnet'; known: "):
        resolve_detectors(typo, registry)
    for good in ("efficientnet_lite0", "efficientnet_lite0+tiny_cnn", "tiny_cnn:layers=1", "efficientnet_lite0_in1k"):
        fine = protocol_from_flags(dataset=str(tmp_path), detectors=["probe"], params={"backbone": good})
        assert resolve_detectors(fine, registry, check_weights=False)[0].params["backbone"] == good


class Recording(dfzoo.Detector):
    """Records the params it is built with (tests)."""

    trainable = False
    built: ClassVar[list[dict]] = []

    def __init__(self, **params):
        Recording.built.append(params)
        super().__init__(
            mode=params["mode"],
            items=[v.strip() for v in params["items"].split(",")]
            if isinstance(params["items"], str)
            else list(params["items"]),
        )

    def score(self, samples):
        return torch.zeros(len(samples)).numpy()


RECORDING = SpecPlugin(
    detectors=[
        dfzoo.DetectorSpec(
            name="recording",
            factory=Recording,
            trainable=False,
            params={"mode": "a", "items": ["x"], "extra": 1},
            param_schema={"mode": Param(choices=("a", "b")), "items": Param(types=(list, str))},
        ),
        dfzoo.DetectorSpec(name="not_a_detector", summary="tests", factory=lambda **p: object(), params={"x": 1}),
    ]
)


@pytest.fixture
def recording_registry():
    Recording.built.clear()
    registry = Registry(get_plugin_manager(builtins=False, autoload=False, extra_plugins=(RECORDING,)))
    with use_registry(registry):
        yield registry


def test_values_are_checked_before_the_factory_runs(recording_registry):
    with pytest.raises(ParamError, match="unknown mode 'c'; allowed: a, b"):
        dfzoo.load_detector("recording", mode="c")
    with pytest.raises(TypeError, match=r"has no parameter.*colour"):  # a ParamError is a TypeError too
        dfzoo.load_detector("recording", colour=1)
    assert Recording.built == []


def test_the_detector_owns_its_normalised_params(recording_registry, tmp_path):
    detector = dfzoo.load_detector("recording", items="p, q")
    assert detector.params["items"] == ["p", "q"]  # the constructor's list, not the raw string
    assert detector.params["extra"] == 1  # a name the constructor dropped is still recorded
    again = dfzoo.load_fitted(detector.save(tmp_path / "saved"))
    assert again.params == detector.params


def test_a_factory_must_return_a_detector(recording_registry):
    with pytest.raises(RegistryError, match=r"factory of detector 'not_a_detector'.*returned object"):
        dfzoo.load_detector("not_a_detector")


def test_aeroblade_keeps_its_parsed_vaes(registry, tmp_path):
    detector = dfzoo.load_detector("aeroblade", vaes="random:tiny_kl", distance="l2")
    assert detector.params["vaes"] == ["random:tiny_kl"]
    assert [ref for ref, _ in detector.plan().vaes] == ["random:tiny_kl"]  # one model, not "r", "a", "n"...
    assert dfzoo.load_fitted(detector.save(tmp_path / "aeroblade")).params["vaes"] == ["random:tiny_kl"]


# -- device ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("requested", ["gpu", "tpu:0", "cuda:x", "cpu cpu"])
def test_unknown_device_strings_are_one_clear_error(requested):
    with pytest.raises(DeviceError, match=f"unknown device '{requested}'; use auto, cpu, cuda"):
        pick_device(requested)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused():
    with pytest.raises(DeviceError, match="'cuda:1' asked for, but CUDA is not available"):
        pick_device("cuda:1")


def test_device_from_the_environment_is_checked_and_named(monkeypatch):
    monkeypatch.setenv("DFZOO_DEVICE", "quantum")
    with pytest.raises(DeviceError, match=r"unknown \$DFZOO_DEVICE 'quantum'"):
        pick_device(None)
    assert pick_device("cpu") == torch.device("cpu")  # an explicit choice wins over the environment
