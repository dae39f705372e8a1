"""The plugin system: built-ins, third-party entry points, broken plugins, duplicates, misspelled hooks."""

from __future__ import annotations

import inspect
from pathlib import Path

import pluggy
import pytest

import dfzoo
from dfzoo import hookspecs
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry, RegistryError, UnknownNameError
from tests.kit import install_fake_distribution

THIRD_PARTY = """
    import numpy as np
    import dfzoo

    class Brightness(dfzoo.Detector):
        trainable = False
        def score(self, samples):
            return np.zeros(len(samples))

    @dfzoo.hookimpl
    def dfzoo_detectors():
        yield dfzoo.DetectorSpec(name="thirdparty_brightness", summary="third-party test detector",
                                 factory=lambda **p: Brightness(**p), trainable=False)
"""


def test_builtin_plugins_offer_both_univfd_detectors():
    registry = Registry(get_plugin_manager(autoload=False))
    assert {"clip_probe", "nn_cosine"} <= set(registry.names("detector"))
    assert registry.provider("detector", "nn_cosine") == "dfzoo.plugins.detectors.univfd"


def test_entry_point_plugin_adds_a_detector_without_changing_dfzoo(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, "dfzoo_thirdparty", THIRD_PARTY)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry(get_plugin_manager())
    assert "thirdparty_brightness" in registry.names("detector")
    detector = dfzoo.load_detector("thirdparty_brightness", registry=registry)
    assert detector.score([dfzoo.Sample(path=None, label=-1)]).shape == (1,)


def test_autoload_can_be_turned_off_by_environment(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, "dfzoo_thirdparty", THIRD_PARTY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DFZOO_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "thirdparty_brightness" not in Registry(get_plugin_manager()).names("detector")


def test_broken_third_party_plugin_is_reported_and_skipped(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, "dfzoo_broken", "raise ImportError('needs a package you lack')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry(get_plugin_manager())
    assert "nn_cosine" in registry.names("detector")
    assert any("dfzoo_broken" in p.plugin and "needs a package you lack" in p.error for p in registry.problems)


def test_plugin_whose_hook_raises_is_reported_and_skipped():
    class Raising:
        @dfzoo.hookimpl
        def dfzoo_detectors(self):
            raise RuntimeError("boom")

    registry = Registry(get_plugin_manager(autoload=False, extra_plugins=(Raising(),)))
    assert "nn_cosine" in registry.names("detector")
    assert any("boom" in p.error for p in registry.problems)


def test_misspelled_hook_is_rejected():
    class Misspelled:
        @dfzoo.hookimpl
        def dfzoo_detector(self):  # missing "s"
            return []

    with pytest.raises(pluggy.PluginValidationError):
        get_plugin_manager(autoload=False, extra_plugins=(Misspelled(),))


class Impostor:
    """A plugin offering a detector of its own plus a name a built-in has already."""

    @dfzoo.hookimpl
    def dfzoo_detectors(self):
        yield dfzoo.DetectorSpec(name="impostor_own", summary="its own", factory=lambda **p: None)
        yield dfzoo.DetectorSpec(name="nn_cosine", summary="impostor", factory=lambda **p: None)


def test_third_party_duplicate_of_a_builtin_is_skipped_as_a_whole(caplog):
    registry = Registry(get_plugin_manager(autoload=False, extra_plugins=(Impostor(),)))
    assert registry.provider("detector", "nn_cosine") == "dfzoo.plugins.detectors.univfd"
    assert "impostor_own" not in registry.names("detector")  # nothing of a conflicting plugin is half-loaded
    [problem] = registry.problems
    assert (
        "Impostor" in problem.plugin
        and "nn_cosine" in problem.error
        and "dfzoo.plugins.detectors.univfd" in problem.error
    )
    assert [r.getMessage() for r in caplog.records if "skipping plugin" in r.getMessage()] == [
        f"skipping plugin {problem.plugin}: {problem.error}"
    ]


def test_two_third_party_plugins_with_one_name_keep_the_first():
    class First:
        @dfzoo.hookimpl
        def dfzoo_detectors(self):
            yield dfzoo.DetectorSpec(name="shared_name", summary="first", factory=lambda **p: None)

    class Second:
        @dfzoo.hookimpl
        def dfzoo_detectors(self):
            yield dfzoo.DetectorSpec(name="shared_name", summary="second", factory=lambda **p: None)

    registry = Registry(get_plugin_manager(autoload=False, extra_plugins=(First(), Second())))
    assert registry.detector("shared_name").summary == "first"
    assert any("Second" in p.plugin and "First" in p.error for p in registry.problems)


@pytest.mark.parametrize(
    "offer",
    [
        "not a spec",
        dfzoo.DatasetSpec(name="x", summary="", load=lambda r: None),
        dfzoo.DetectorSpec(name="Bad Name!", summary="", factory=lambda **p: None),
    ],
)
def test_third_party_plugin_with_a_bad_spec_is_skipped(offer):
    class Bad:
        @dfzoo.hookimpl
        def dfzoo_detectors(self):
            yield dfzoo.DetectorSpec(name="bad_plugin_ok_part", summary="", factory=lambda **p: None)
            yield offer

    registry = Registry(get_plugin_manager(autoload=False, extra_plugins=(Bad(),)))
    assert "nn_cosine" in registry.names("detector") and "bad_plugin_ok_part" not in registry.names("detector")
    assert any("Bad" in p.plugin for p in registry.problems)


def test_plugin_hook_that_exits_is_skipped():
    class Exiting:
        @dfzoo.hookimpl
        def dfzoo_weights(self):
            raise SystemExit(3)

    registry = Registry(get_plugin_manager(autoload=False, extra_plugins=(Exiting(),)))
    assert "efficientnet_lite0_in1k" in registry.names("weights")
    assert any("SystemExit" in p.error for p in registry.problems)


def test_duplicate_between_builtins_raises_and_names_both_providers():
    pm = get_plugin_manager(autoload=False)
    pm.register_builtin(Impostor(), "dfzoo.plugins.impostor")
    with pytest.raises(RegistryError, match=r"nn_cosine.*dfzoo\.plugins\.detectors\.univfd.*dfzoo\.plugins\.impostor"):
        Registry(pm)


@pytest.mark.parametrize(
    "source, reason",
    [
        ("import sys\nsys.exit('bye')\n", "SystemExit"),
        ("import dfzoo\n@dfzoo.hookimpl\ndef dfzoo_detector():\n    return []\n", "dfzoo_detector"),
    ],
)
def test_entry_point_plugin_that_exits_or_misspells_a_hook_is_skipped(tmp_path, monkeypatch, source, reason):
    install_fake_distribution(tmp_path, "dfzoo_odd", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry(get_plugin_manager())
    assert "nn_cosine" in registry.names("detector")
    assert any("dfzoo_odd" in p.plugin and reason in p.error for p in registry.problems)


def test_unknown_name_suggests_close_matches(registry):
    with pytest.raises(UnknownNameError, match="did you mean nn_cosine"):
        registry.detector("nn_cosin")


def test_unknown_detector_parameter_is_a_clear_error(registry):
    with pytest.raises(TypeError, match=r"no parameter.*backbon"):
        dfzoo.load_detector("nn_cosine", backbon="tiny_cnn")


def test_weights_needed_follows_backbone_parameter(registry):
    assert registry.weights_needed("nn_cosine") == ["clip_vit_l14_openai"]
    assert registry.weights_needed("nn_cosine", {"backbone": "efficientnet_lite0"}) == ["efficientnet_lite0_in1k"]


@pytest.mark.parametrize(
    "name", [n for n, _ in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("dfzoo_")]
)
def test_every_hook_is_documented_with_an_example(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert "Called when" in doc, f"{name} must say when it is called"
    assert "Example::" in doc and "@dfzoo.hookimpl" in doc, f"{name} needs an example plugin"
    assert name in (Path(__file__).parents[1] / "README.md").read_text(), f"{name} missing from README"


def test_command_summary_is_the_first_paragraph_of_its_docstring():
    def hello(args) -> int:
        """Say hello
        to the zoo.

        Everything after the first paragraph is for the reader of the code."""
        return 0

    spec = dfzoo.CommandSpec(name="hello", add_arguments=lambda parser: None, run=hello)
    assert spec.summary == "Say hello to the zoo"
    assert dfzoo.CommandSpec(name="hi", summary="Given", add_arguments=print, run=hello).summary == "Given"
    assert dfzoo.CommandSpec(name="bare", add_arguments=print, run=lambda args: 0).summary == ""


def test_detector_summary_comes_from_its_factory_not_an_inherited_docstring():
    class Documented(dfzoo.Detector):
        """Scores by colour.

        Details."""

    class Undocumented(Documented):
        pass

    assert dfzoo.DetectorSpec(name="a", factory=Documented).summary == "Scores by colour"
    assert dfzoo.DetectorSpec(name="b", factory=Undocumented).summary == ""


def test_dataset_spec_takes_summary_and_params_from_its_loader():
    def load_mine(root, generator: str = "gen", *, family: str = "gan", **extra):
        """<root>/{real,fake}/ with one
        generator.

        Details."""

    spec = dfzoo.DatasetSpec(name="mine", load=load_mine)
    assert spec.summary == "<root>/{real,fake}/ with one generator"
    assert spec.params == {"generator": "gen", "family": "gan"}
    explicit = dfzoo.DatasetSpec(name="mine", load=load_mine, summary="Given", params={"generator": "x"})
    assert (explicit.summary, explicit.params) == ("Given", {"generator": "x"})
