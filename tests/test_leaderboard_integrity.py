"""A leaderboard that cannot mislead: stores written row by row (as the harness writes them) with known scores.

Each store holds real per-image sidecars and metrics computed from them by ``metrics.binary_metrics``, so the
rendered numbers, the intervals of means and ``dfzoo leaderboard --check`` all work on genuine data.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from dfzoo.benchmark import metrics
from dfzoo.benchmark.board import ProtocolBoard, image_ids
from dfzoo.benchmark.check import check_store
from dfzoo.benchmark.leaderboard import render_leaderboard, summary_table
from dfzoo.benchmark.markdown import FIXED_NOTE, MISSING_NOTE
from dfzoo.benchmark.selection import current_configurations, family_label
from dfzoo.benchmark.store import ERROR, OK, ResultStore, latest_rows
from dfzoo.benchmark.text import DASH, NOT_MEANINGFUL, Cell, bold_separated
from tests.store_kit import N_FAKE, N_REAL, START, StoreWriter


def board_of(root: Path, name: str = "p") -> ProtocolBoard:
    store = ResultStore(root)
    rows, older = current_configurations(store.rows())
    return ProtocolBoard(
        name, [r for r in rows if r["protocol"] == name], store, [o for o in older if o.protocol == name]
    )


def table_lines(markdown: str, title: str) -> list[str]:
    """The rows of the Markdown table under the heading that starts with ``title``."""
    section = markdown.split(f"### {title}", 1)[1]
    lines = [line for line in section.split("\n\n", 2)[1].splitlines()]
    return lines[2:]


def first_cells(lines: list[str]) -> list[str]:
    return [line.split("|")[1].strip() for line in lines]


# -- 1. NaN-safe ranking ---------------------------------------------------------------------------------
def test_nan_mean_never_outranks_a_real_one(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "store")
    for generator in ("g1", "g2", "g3"):
        writer.row("fair", generator, separation=1.2)
        writer.row("a_broken", generator, scores=np.full(N_FAKE + N_REAL, np.nan))  # every image NaN
        writer.row("good", generator, separation=6.0)
    board = board_of(tmp_path / "store")
    assert board.labels == ["good", "fair", "a_broken"]
    render_leaderboard(tmp_path / "store", tmp_path / "board", plots=False)
    markdown = (tmp_path / "board" / "README.md").read_text()
    ranked = table_lines(markdown, "ROC-AUC")
    assert first_cells(ranked) == ["good", "fair", "a_broken"]
    assert f"{DASH} (0/3 generators)" in ranked[2]


# -- 2. a missing generator means no mean ----------------------------------------------------------------
def test_missing_generator_gets_no_mean(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "store")
    only_fakes = np.ones(N_FAKE, int)
    for generator in ("easy1", "easy2", "hard"):
        writer.row("steady", generator, separation=1.5)
        if generator == "hard":
            writer.row("flaky", generator, status=ERROR)  # fails exactly on the hard generator
            writer.row("one_class", generator, labels=only_fakes, scores=np.linspace(0, 1, N_FAKE))  # AUC undefined
        else:
            writer.row("flaky", generator, separation=8.0)
            writer.row("one_class", generator, separation=8.0)
    render_leaderboard(tmp_path / "store", tmp_path / "board", plots=False)
    markdown = (tmp_path / "board" / "README.md").read_text()
    ranked = table_lines(markdown, "ROC-AUC")
    assert first_cells(ranked) == ["steady", "flaky", "one_class"]  # perfect on the easy two, yet no mean
    for line in ranked[1:]:
        assert f"{DASH} (2/3 generators)" in line and "[" not in line.split("|")[-2]  # no mean, no interval
    assert MISSING_NOTE in markdown
    document = json.loads((tmp_path / "board" / "results.json").read_text())
    entries = {e["label"]: e for e in document["protocols"]["p"]}
    assert entries["flaky"]["mean"]["none"]["all"]["auc"] is None
    assert entries["flaky"]["mean"]["none"]["all"]["defined"]["auc"] == 2
    assert entries["flaky"]["mean_ci"]["all"]["auc_ci"] == [None, None]
    assert entries["steady"]["mean"]["none"]["all"]["auc"] is not None
    assert "2/3 generators" in summary_table(tmp_path / "store")


# -- 3. a re-configured run never mixes with the old one -------------------------------------------------
def test_latest_rows_keeps_configurations_apart() -> None:
    base = {
        "protocol": "p",
        "protocol_hash": "h",
        "dataset": {"fingerprint": "a"},
        "train_generators": ["x"],
        "label": "d",
        "params_hash": "ph",
        "test_generator": "g",
        "test_perturbation": "none",
    }
    retried = [dict(base, row_id="1"), dict(base, row_id="2")]
    assert [r["row_id"] for r in latest_rows(retried)] == ["2"]
    for change in (
        {"protocol_hash": "h2"},
        {"dataset": {"fingerprint": "b"}},
        {"train_generators": ["y"]},
        {"params_hash": "other"},
        {"test_perturbation": "jpeg"},
    ):
        assert len(latest_rows([dict(base, row_id="1"), dict(base, row_id="2", **change)])) == 2, change


def test_only_the_newest_configuration_is_shown(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "store")
    late = (START + timedelta(hours=1)).isoformat(timespec="seconds")
    # the new configuration is written first in the file but finished later: finished_at decides
    writer.row("det", "g1", separation=1.0, protocol_hash="new", fingerprint="fp2", finished_at=late)
    writer.row("det", "g2", status=ERROR, protocol_hash="new", fingerprint="fp2", finished_at=late)
    writer.row("det", "g2", separation=1.0, protocol_hash="new", fingerprint="fp2", finished_at=late)  # retried
    for generator in ("g1", "g2", "g_old_only"):
        writer.row("det", generator, separation=8.0, protocol_hash="old")
    writer.row("other", "g1", protocol="q")
    rows, older = current_configurations(ResultStore(tmp_path / "store").rows())
    shown = [r for r in rows if r["protocol"] == "p"]
    assert {r["protocol_hash"] for r in shown} == {"new"} and len(shown) == 2
    assert all(r["status"] == OK for r in shown)
    assert [(o.protocol, o.protocol_hash, o.rows) for o in older] == [("p", "old", 3)]
    render_leaderboard(tmp_path / "store", tmp_path / "board", plots=False)
    markdown = (tmp_path / "board" / "README.md").read_text()
    assert "Older results not shown" in markdown and "3 row(s) of configuration `old`" in markdown
    assert "g_old_only" not in markdown and "fp2" in markdown
    document = json.loads((tmp_path / "board" / "results.json").read_text())
    assert {r["protocol_hash"] for r in document["rows"] if r["protocol"] == "p"} == {"new"}
    assert document["older_configurations"][0]["rows"] == 3
    with open(tmp_path / "board" / "results.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 3  # p (2) + q (1)


# -- 4. the mean's interval resamples the shared reals jointly -------------------------------------------
def test_board_interval_uses_image_ids_and_infers_them_for_old_sidecars(tmp_path: Path) -> None:
    intervals = {}
    for with_ids in (True, False):
        writer = StoreWriter(tmp_path / f"store-{with_ids}")
        for generator in ("g1", "g2", "g3"):
            writer.row("det", generator, separation=1.0, with_ids=with_ids)
        board = board_of(tmp_path / f"store-{with_ids}")
        intervals[with_ids] = board.mean_ci("det")
    writer = StoreWriter(tmp_path / "expected")
    sets, ids = zip(*((lambda s: ((s[0], s[1]), s[2]))(writer.scored(g, 1.0)) for g in ("g1", "g2", "g3")), strict=True)
    assert intervals[True] == metrics.mean_intervals(list(sets), 200, 0, ids=list(ids))
    assert intervals[False] == intervals[True]  # old sidecars: identical real-score vectors = the shared reals
    assert intervals[True] != metrics.mean_intervals(list(sets), 200, 0)  # not the independent resample


def test_image_ids_for_sidecars_without_ids() -> None:
    from dfzoo.benchmark.store import Sidecar

    reals = np.array([0.1, 0.2])
    shared = {g: Sidecar(np.array([1, 1, 0, 0]), np.r_[np.random.rand(2), reals]) for g in ("a", "b")}
    own = Sidecar(np.array([1, 0, 0]), np.array([0.9, 0.3, 0.4]))
    a, b, c = image_ids({**shared, "c": own})
    assert list(a[2:]) == list(b[2:]) and not set(a[2:]) & set(c[1:])  # shared reals match, own reals do not
    assert not set(a[:2]) & set(b[:2])  # fakes are each generator's own


# -- 5. accuracy only where the threshold means something ------------------------------------------------
def test_accuracy_hidden_under_the_fixed_policy(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "store")
    for generator in ("g1", "g2"):
        writer.row("raw_distance", generator, separation=-2.0, policy=metrics.FIXED_POLICY)
        writer.row("probability", generator, separation=2.0)
        writer.row(
            "quantile",
            generator,
            separation=2.0,
            policy=metrics.TRAIN_REAL_QUANTILE_POLICY,
            threshold=1.6,
            threshold_fpr=0.05,
        )
    render_leaderboard(tmp_path / "store", tmp_path / "board", plots=False)
    markdown = (tmp_path / "board" / "README.md").read_text()
    summary = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in table_lines(markdown, "Accuracy")
    }
    assert summary["raw_distance"][:3] == [NOT_MEANINGFUL] * 3
    assert summary["raw_distance"][3] != NOT_MEANINGFUL  # the oracle accuracy needs no threshold
    assert all(NOT_MEANINGFUL not in c for c in summary["probability"][:3] + summary["quantile"][:3])
    assert summary["quantile"][-1] == "1.600 (train_real_quantile, FPR 0.05 on training reals)"
    assert FIXED_NOTE in markdown
    per_generator = markdown.split("as overall (real / fake):", 1)[1]
    assert f"| {NOT_MEANINGFUL}" in per_generator.split("raw_distance", 1)[1].splitlines()[0]
    document = json.loads((tmp_path / "board" / "results.json").read_text())
    raw = next(e for e in document["protocols"]["p"] if e["label"] == "raw_distance")
    assert raw["mean"]["none"]["all"]["acc"] is None and raw["mean"]["none"]["all"]["auc"] is not None
    line = next(text for text in summary_table(tmp_path / "store").splitlines() if "raw_distance" in text)
    assert NOT_MEANINGFUL in line


# -- 6. bold only where the intervals separate -----------------------------------------------------------
def test_bold_needs_separated_intervals() -> None:
    def column(*cells: Cell) -> list[list]:
        table = [["d", cell] for cell in cells]
        bold_separated(table)
        return [row[1].bold for row in table]

    assert column(Cell(0.9, (0.85, 0.95), "0.9"), Cell(0.7, (0.6, 0.8), "0.7")) == [True, False]
    assert column(Cell(0.9, (0.75, 0.95), "0.9"), Cell(0.7, (0.6, 0.8), "0.7")) == [False, False]
    assert column(Cell(0.9, (0.85, 0.95), "0.9"), Cell(0.7, (0.6, 0.8), "0.7"), Cell(0.5, (0.2, 0.88), "0.5")) == [
        False,
        False,
        False,
    ]  # overlaps a lower, wider interval
    assert column(Cell(0.9, text="0.9"), Cell(0.1, (0.0, 0.2), "0.1")) == [False, False]  # no interval
    assert column(Cell(0.9, (0.85, 0.95), "0.9"), Cell(math.nan, text=DASH)) == [False, False]  # nothing to beat
    assert column(Cell(0.9, (0.89, 0.91), "0.9"), Cell(0.9, (0.89, 0.91), "0.9")) == [False, False]  # a tie


def test_mean_column_is_bold_only_when_it_means_something(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "store")
    for generator in ("g1", "g2"):
        writer.row("strong", generator, separation=6.0)
        writer.row("weak", generator, separation=0.2)
        writer.row("close", generator, separation=0.3)
    render_leaderboard(tmp_path / "store", tmp_path / "board", plots=False)
    strong, weak, close = table_lines((tmp_path / "board" / "README.md").read_text(), "ROC-AUC")[:3]
    assert strong.split("|")[-2].strip().startswith("**1.000** [")  # far above the rest
    assert "**" not in weak + close  # their intervals overlap: neither is bold
    writer = StoreWriter(tmp_path / "no-ci")
    for generator in ("g1", "g2"):
        writer.row("strong", generator, separation=6.0, bootstrap=0)
        writer.row("weak", generator, separation=0.2, bootstrap=0)
    render_leaderboard(tmp_path / "no-ci", tmp_path / "board-no-ci", plots=False)
    assert "**" not in "\n".join(table_lines((tmp_path / "board-no-ci" / "README.md").read_text(), "ROC-AUC"))


# -- 7. unseen generators rank, seen ones have their own mean --------------------------------------------
def test_ranked_by_the_unseen_mean(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "store")
    writer.row("memoriser", "g_train", separation=8.0, seen=True)
    writer.row("generaliser", "g_train", separation=1.5, seen=True)
    for generator in ("u1", "u2"):
        writer.row("memoriser", generator, separation=0.3)
        writer.row("generaliser", generator, separation=1.5)
    board = board_of(tmp_path / "store")
    assert board.rank_group == "unseen" and board.labels == ["generaliser", "memoriser"]
    render_leaderboard(tmp_path / "store", tmp_path / "board", plots=False)
    markdown = (tmp_path / "board" / "README.md").read_text()
    assert "| Unseen mean [95% CI]" in markdown and "| Seen mean [95% CI]" in markdown
    memoriser = next(text for text in table_lines(markdown, "ROC-AUC") if "memoriser" in text)
    assert memoriser.split("|")[-2].strip().startswith("**1.000** [")  # its seen mean is perfect, and apart
    seen_only = StoreWriter(tmp_path / "all-seen")
    for generator in ("g1", "g2"):
        seen_only.row("det", generator, seen=True, train=("g1", "g2"))
    board = board_of(tmp_path / "all-seen")
    assert board.rank_group == "all" and list(board.groups) == ["all"]


# -- 8. unknown family is "unknown" ----------------------------------------------------------------------
def test_unknown_family_is_not_real(tmp_path: Path) -> None:
    assert family_label("") == family_label(None) == family_label("real") == "unknown"
    assert family_label("gan") == "gan"
    writer = StoreWriter(tmp_path / "store")
    writer.row("det", "mystery", family="real")  # what rows of a generator with its own reals used to say
    writer.row("det", "blank", family="")
    render_leaderboard(tmp_path / "store", tmp_path / "board", plots=False)
    markdown = (tmp_path / "board" / "README.md").read_text()
    assert "Generator families: unknown: blank, mystery" in markdown and "real:" not in markdown
    with open(tmp_path / "board" / "results.csv", newline="") as handle:
        assert {r["test_family"] for r in csv.DictReader(handle)} == {"unknown"}


def test_split_takes_a_generators_family_from_its_fakes() -> None:
    """A generator with its own reals (ForenSynths ``<gen>/0_real``) and no known family is unknown, not real."""
    from dfzoo.benchmark.protocol import parse_protocol
    from dfzoo.benchmark.splits import split_dataset
    from dfzoo.data.sample import DatasetIndex, Sample

    samples = [
        Sample(
            path=Path(f"/d/{g}/{label}_{kind}/{i}.png"),
            label=label,
            generator=g,
            family="real" if label == 0 else family,
        )
        for g, family in (("mystery", ""), ("progan", "gan"))
        for label, kind in ((0, "real"), (1, "fake"))
        for i in range(4)
    ]
    dataset = DatasetIndex(name="d", layout="forensynths", root=Path("/d"), samples=samples, families={"progan": "gan"})
    protocol = parse_protocol(
        {"name": "t", "dataset": "/d", "train_generators": ["progan"], "detectors": [{"name": "any"}]}
    )
    assert split_dataset(protocol, dataset).families == {"progan": "gan"}


# -- 9. dfzoo leaderboard --check ------------------------------------------------------------------------
def test_check_recomputes_every_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dfzoo.cli import main
    from dfzoo.registry import use_registry
    from tests.kit import make_registry

    root = tmp_path / "store"
    writer = StoreWriter(root)
    rows = [writer.row("det", g, separation=1.0) for g in ("g1", "g2", "g3")]
    writer.row("det", "g4", status=ERROR)  # error rows have nothing to recompute
    with use_registry(make_registry()):
        assert main(["leaderboard", "--check", "--store", str(root)]) == 0
        assert "3 ok row(s)" in capsys.readouterr().out
        lines = (root / "results.jsonl").read_text().splitlines()
        tampered = json.loads(lines[0])
        tampered["metrics"]["auc"] += 0.001
        lines[0] = json.dumps(tampered)
        (root / "results.jsonl").write_text("\n".join(lines) + "\n")
        (root / "scores" / f"{rows[2]['row_id']}.npz").unlink()
        assert main(["leaderboard", "--check", "--store", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"row {rows[0]['row_id']}" in err and "auc: stored" in err
    assert f"row {rows[2]['row_id']}" in err and "missing" in err
    assert f"row {rows[1]['row_id']}" not in err
    assert "2 of 3 ok row(s)" in err
    report = check_store(root)
    assert [p.row_id for p in report.problems] == [rows[0]["row_id"], rows[2]["row_id"]]


def test_check_catches_a_tampered_interval_within_tolerance_rules(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "store")
    row = writer.row("det", "g1", separation=1.0)
    lines = (tmp_path / "store" / "results.jsonl").read_text().splitlines()
    stored = json.loads(lines[0])
    stored["metrics"]["auc_ci"][0] += 1e-12  # below the tolerance: still fine
    (tmp_path / "store" / "results.jsonl").write_text(json.dumps(stored) + "\n")
    assert check_store(tmp_path / "store").ok
    stored["metrics"]["auc_ci"][0] += 1e-6
    stored["metrics"]["n_fake"] -= 1
    (tmp_path / "store" / "results.jsonl").write_text(json.dumps(stored) + "\n")
    problems = check_store(tmp_path / "store").problems
    assert len(problems) == 1 and problems[0].row_id == row["row_id"]
    assert "auc_ci[0]" in problems[0].problem and "n_fake" in problems[0].problem


def test_unreadable_sidecar_is_left_out_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = StoreWriter(tmp_path / "store")
    writer.row("det", "g1")
    row_id = str(writer.store.rows()[0]["row_id"])
    assert writer.store.load_sidecar(row_id) is not None
    writer.store.scores_path(row_id).write_bytes(b"not a numpy archive")
    with caplog.at_level("WARNING", logger="dfzoo.benchmark.store"):
        assert writer.store.load_sidecar(row_id) is None
    assert "unreadable" in caplog.text and row_id in caplog.text
    assert writer.store.load_sidecar("no-such-row") is None  # missing: nothing to say


def test_summary_table_shows_a_leave_one_out_group_as_one_line_per_detector(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path / "store")
    for held, separation in (("g1", 3.0), ("g2", 1.0)):
        for label, shift in (("strong", separation), ("weak", 0.0)):
            writer.row(
                label, held, shift, protocol=f"logo/loo-{held}", protocol_hash=f"logo-{held}",
                protocol_group="logo", held_out=held,
            )  # fmt: skip
    lines = summary_table(tmp_path / "store").splitlines()
    assert not any("loo-g1" in line or "loo-g2" in line for line in lines)  # folds are not listed one by one
    at = {label: next(i for i, line in enumerate(lines) if f" {label} " in line) for label in ("strong", "weak")}
    strong, weak = (lines[at[label]].split() for label in ("strong", "weak"))
    aucs = [metrics.binary_metrics(*writer.scored(g, s)[:2])["auc"] for g, s in (("g1", 3.0), ("g2", 1.0))]
    assert strong[:5] == ["logo", "strong", "held", "out", "(2"]
    assert float(strong[6]) == pytest.approx(np.mean(aucs), abs=5e-4)
    assert float(weak[6]) < float(strong[6]) and at["strong"] < at["weak"]  # ranked by the mean
    assert strong[-2:] == ["2", "ok"]


def test_summary_table_selects_a_leave_one_out_protocol_by_its_name(tmp_path: Path) -> None:
    """``dfzoo run`` passes the protocols it ran ("logo"); their folds ("logo/loo-g1") are what the store holds."""
    writer = StoreWriter(tmp_path / "store")
    for held in ("g1", "g2"):
        writer.row(
            "strong", held, 3.0, protocol=f"logo/loo-{held}", protocol_hash=f"logo-{held}",
            protocol_group="logo", held_out=held,
        )  # fmt: skip
    writer.row("strong", "g1", 3.0, protocol="other", protocol_hash="other")
    chosen = summary_table(tmp_path / "store", ["logo"]).splitlines()
    assert [line.split()[:2] for line in chosen[2:]] == [["logo", "strong"]]
    assert chosen[2] in summary_table(tmp_path / "store").splitlines()
