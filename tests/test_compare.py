"""Paired tests of ROC-AUC differences (DeLong, paired bootstrap) against known cases, and ``dfzoo compare``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dfzoo.benchmark import metrics
from dfzoo.benchmark.compare import compare_detectors, compare_stores
from dfzoo.benchmark.paired import delong, holm, midranks, paired_bootstrap, structural_components
from tests.store_kit import StoreWriter


def test_delong_hand_computed_example() -> None:
    """Two fakes, two reals, worked by hand from the definition.

    A scores fakes (0.8, 0.6) and reals (0.7, 0.2): of the four fake/real pairs A orders three right, AUC 3/4;
    per fake the share of reals it beats is (1, 1/2), per real the share of fakes above it (1/2, 1): each
    has sample variance 1/8. B (fakes 0.9, 0.5; reals 0.4, 0.1) orders all four, AUC 1, components constant.
    Var(B − A) = 1/8 / 2 + 1/8 / 2 = 1/8, z = 0.25 / sqrt(1/8) = 0.7071, p = erfc(0.5) = 0.4795.
    """
    labels = [1, 1, 0, 0]
    result = delong(labels, [0.8, 0.6, 0.7, 0.2], [0.9, 0.5, 0.4, 0.1])
    assert result.auc_a == pytest.approx(0.75) and result.auc_b == pytest.approx(1.0)
    assert result.difference == pytest.approx(0.25)
    assert result.standard_error == pytest.approx(math.sqrt(0.125))
    assert result.z == pytest.approx(0.25 / math.sqrt(0.125))
    assert result.p_value == pytest.approx(math.erfc(0.5)) and result.p_value == pytest.approx(0.4795, abs=1e-4)


def test_structural_components_match_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(3)
    labels = np.r_[np.ones(30, int), np.zeros(25, int)]
    scores = rng.integers(0, 6, labels.size).astype(float)  # many ties
    auc, v10, v01 = structural_components(labels, scores)
    fakes, reals = scores[labels == 1], scores[labels == 0]
    psi = (fakes[:, None] > reals[None, :]) + 0.5 * (fakes[:, None] == reals[None, :])
    np.testing.assert_allclose(v10, psi.mean(axis=1))
    np.testing.assert_allclose(v01, psi.mean(axis=0))
    assert auc == pytest.approx(metrics.binary_metrics(labels, scores, 0.5)["auc"])
    np.testing.assert_array_equal(midranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1.0, 3.5, 2.0])


def test_identical_scores_give_no_difference() -> None:
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(50, int), np.zeros(50, int)]
    scores = rng.normal(labels * 1.0, 1.0)
    test = delong(labels, scores, scores)
    assert test.difference == 0 and test.p_value == 1.0
    boot = paired_bootstrap(labels, scores, scores, 200)
    assert boot.difference == 0 and boot.interval == (0.0, 0.0) and boot.p_value == 1.0


def test_clearly_better_detector_gets_a_tiny_p() -> None:
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(200, int), np.zeros(200, int)]
    weak, strong = rng.normal(labels * 0.3, 1.0), rng.normal(labels * 3.0, 1.0)
    test = delong(labels, weak, strong)
    assert test.difference > 0.3 and test.p_value < 1e-10
    boot = paired_bootstrap(labels, weak, strong, 500, seed=2)
    assert boot.interval[0] > 0.2 and boot.p_value == 0.0
    swapped = delong(labels, strong, weak)
    assert swapped.difference == pytest.approx(-test.difference) and swapped.p_value == pytest.approx(test.p_value)


def test_small_noise_is_not_significant_and_nan_images_are_dropped() -> None:
    rng = np.random.default_rng(5)
    labels = np.r_[np.ones(60, int), np.zeros(60, int)]
    a = rng.normal(labels * 1.0, 1.0)
    b = a + rng.normal(0, 0.05, a.size)
    b[:3] = np.nan
    test, boot = delong(labels, a, b), paired_bootstrap(labels, a, b, 300)
    assert test.p_value > 0.05 and boot.interval[0] < 0 < boot.interval[1]
    assert test.auc_a == pytest.approx(metrics.binary_metrics(labels[3:], a[3:], 0.5)["auc"])
    with pytest.raises(ValueError, match="two fakes and two reals"):
        delong([1, 0, 0], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)


def _two_stores(tmp_path: Path) -> tuple[Path, Path]:
    for name, separation in (("a", 0.5), ("b", 3.0)):
        writer = StoreWriter(tmp_path / name)
        for generator in ("g1", "g2"):
            writer.row("det", generator, separation)
            writer.row("same", generator, 1.0)
        if name == "b":
            writer.row("only_b", "g1", 1.0)
    return tmp_path / "a", tmp_path / "b"


def test_compare_stores_pairs_cells_by_image(tmp_path: Path) -> None:
    store_a, store_b = _two_stores(tmp_path)
    comparison = compare_stores(store_a, store_b, n_bootstrap=200)
    cells = {(c.detector, c.generator): c for c in comparison.cells}
    assert set(cells) == {("det", "g1"), ("det", "g2"), ("same", "g1"), ("same", "g2")}  # only_b has no pair
    assert all(c.images == 80 for c in cells.values())
    assert cells[("det", "g1")].difference > 0.3 and cells[("det", "g1")].p_holm < 1e-4
    assert cells[("same", "g1")].difference == 0 and cells[("same", "g1")].p_delong == 1.0
    assert "B is better in 2 and worse in 0" in comparison.table()
    page = comparison.write_html(tmp_path / "out").read_text()
    assert 'id="compare"' in page and page.count("<tr>") == 5


def test_compare_detectors_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dfzoo.cli import main

    writer = StoreWriter(tmp_path / "s")
    for generator in ("g1", "g2"):
        writer.row("weak", generator, 0.3)
        writer.row("strong", generator, 3.0)
    comparison = compare_detectors(tmp_path / "s", "weak", "strong", n_bootstrap=100)
    assert len(comparison.cells) == 2 and all(c.difference > 0.3 for c in comparison.cells)
    assert (
        main(["compare", str(tmp_path / "s"), "--detector", "weak", "--detector", "strong", "--bootstrap", "50"]) == 0
    )
    assert "B is better in 2" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "s"), "--detector", "nope", "--detector", "strong"]) == 2
    assert "detector 'nope' not found" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "s")]) == 2
