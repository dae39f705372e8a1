"""The core commands: list, weights, fit and predict, driven through dfzoo.cli.main."""

from __future__ import annotations

import csv

from dfzoo.cli import main
from dfzoo.plugins.commands.core import parse_params
from tests.kit import fit_args


def test_list_shows_detectors_and_whether_weights_resolve(registry, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "nn_cosine" in out and "clip_probe" in out
    assert "efficientnet_lite0_in1k (ok)" in out and "clip_vit_l14_openai (missing)" in out


def test_weights_command_reports_missing_weights_with_their_path(registry, capsys):
    assert main(["weights", "clip_vit_l14_openai"]) == 1
    captured = capsys.readouterr()
    assert "clip_vit_l14_openai" in captured.err and "to get them" in captured.err
    assert main(["weights", "efficientnet_lite0_in1k"]) == 0
    assert "local" in capsys.readouterr().out


def test_fit_then_predict_writes_scores_and_reports_unreadable_files(registry, folder_dataset, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(fit_args(folder_dataset, model)) == 0
    images = folder_dataset / "gan_a" / "1_fake"
    (images / "broken.png").write_bytes(b"garbage")
    out = tmp_path / "scores.csv"
    assert main(["predict", str(model), str(images), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 13
    broken = next(r for r in rows if r["path"].endswith("broken.png"))
    assert broken["score"] == "" and broken["error"]
    assert sum(int(r["fake"]) for r in rows if r["score"]) >= 10  # trained on these very fakes


def test_predict_refuses_an_untrained_trainable_detector(registry, folder_dataset, capsys):
    assert main(["predict", "nn_cosine", str(folder_dataset)]) == 2
    assert "dfzoo predict: error: nn_cosine must be trained first" in capsys.readouterr().err


def test_parse_params_types(registry):
    # "none" stays a word here: the detector's spec decides whether it means None (see tests/test_params.py)
    pairs = ["k=3", "C=0.5", "normalize=false", "nn_cosine.backbone=tiny_cnn", "weights_path=none"]
    assert parse_params(pairs, "nn_cosine") == {
        "k": 3,
        "C": 0.5,
        "normalize": False,
        "backbone": "tiny_cnn",
        "weights_path": "none",
    }
