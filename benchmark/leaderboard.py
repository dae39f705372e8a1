"""Render a result store as a leaderboard: Markdown (one section per protocol), CSV, JSON and PNG plots.

What is shown, and why it cannot mislead:

- One configuration per protocol: rows are keyed by the protocol's content hash (settings + dataset
  fingerprint), training generators, detector parameters and test condition (:func:`store.latest_rows`), and
  for each protocol name only the configuration with the newest row is shown; older configurations are
  counted in a note, never mixed in.
- A detector gets a mean only when it has a finite value on every test generator of that mean; otherwise the
  cell reads "— (k/n generators)" with a footnote. Ranking puts undefined means last.
- Protocols with generators unseen in training rank by the mean over the unseen ones; the seen ones have
  their own column.
- The interval of a mean resamples the reals that test sets share once per replicate for all of them
  (:func:`metrics.mean_intervals`, image ids from the score sidecars).
- Accuracies are shown only under a meaningful threshold policy (``metrics.MEANINGFUL_THRESHOLD_POLICIES``).
- Bold marks the best value of a column only when its 95% interval lies above every other detector's.

Every number comes from the rows (computed by :mod:`dfzoo.benchmark.metrics`) or, for intervals of means and
ROC curves, from ``metrics`` applied to the raw-score sidecars.

A detector's ``extra_metrics()`` is rendered generically: nested dicts are flattened to dotted keys, lists of
equal-length number lists are drawn as small matrices, and ``{"labels": [...], "matrix": [[...]]}`` as a
matrix with named rows and columns (e.g. a confusion matrix).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dfzoo.data.families import REAL_FAMILY

from . import metrics
from .store import ERROR, OK, SKIPPED, ResultStore, Sidecar, clean_json, latest_rows

CLEAN = "none"
DASH = "–"
UNKNOWN_FAMILY = "unknown"
NOT_MEANINGFUL = f"{DASH}†"
CSV_METRICS = (
    "auc",
    "ap",
    "acc",
    "real_acc",
    "fake_acc",
    "best_acc",
    "eer",
    "tpr_at_1fpr",
    "tpr_at_5fpr",
    "n_real",
    "n_fake",
    "n_nan",
)
SUMMARY_COLUMNS = [
    ("acc", "acc@thr"),
    ("real_acc", "real acc"),
    ("fake_acc", "fake acc"),
    ("best_acc", "best-thr acc (oracle)"),
    ("eer", "EER"),
    ("tpr_at_1fpr", "TPR@1%FPR"),
    ("tpr_at_5fpr", "TPR@5%FPR"),
]
UNSEEN, SEEN, ALL_GENERATORS = "unseen", "seen", "all"
GROUP_TITLES = {UNSEEN: "Unseen mean", SEEN: "Seen mean", ALL_GENERATORS: "Mean"}
MISSING_NOTE = (
    f"{DASH} (k/n generators): the detector has a value on only k of the n test generators of that "
    "mean (an error, a skipped run, or a metric undefined on a test set, e.g. one class only), so it "
    "gets no mean: a mean over the generators that worked would flatter it. See *Skipped and failed*."
)
FIXED_NOTE = (
    f"{NOT_MEANINGFUL}: no accuracy at a threshold for this detector: its threshold is the fixed "
    "default 0.5 (policy `fixed`) and its scores are not known to be probabilities, so that threshold "
    "means nothing. The threshold-free columns still apply."
)


def render_leaderboard(
    store_dir: str | Path, out_dir: str | Path, *, title: str = "dfzoo leaderboard", plots: bool = True
) -> list[Path]:
    """Write ``README.md``, ``results.csv``, ``results.json`` and ``plots/*.png`` into ``out_dir``.

    Returns the paths written. The output depends only on the store's content (no wall-clock date), so
    regenerating an unchanged leaderboard gives the same files.
    """
    store = ResultStore(store_dir)
    rows, older = current_configurations(store.rows())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    boards = _boards(rows, older, store)
    if plots:
        for board in boards:
            written.extend(board.plots(out / "plots"))
    markdown = out / "README.md"
    markdown.write_text(_document(title, store_dir, rows, older, boards))
    written.insert(0, markdown)
    written.append(_write_csv(out / "results.csv", rows))
    written.append(_write_json(out / "results.json", rows, older, boards))
    return written


# -- which rows are shown --------------------------------------------------------------------------------
@dataclass(frozen=True)
class OlderConfiguration:
    """Rows of a protocol's earlier configuration (another protocol hash), left out of the leaderboard."""

    protocol: str
    protocol_hash: str
    rows: int
    newest: str

    def note(self) -> str:
        return f"{self.rows} row(s) of configuration `{self.protocol_hash}` (newest {self.newest or 'undated'})"


def current_configurations(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[OlderConfiguration]]:
    """The latest row of each cell of each protocol's newest configuration, and what was left out.

    ``rows`` are a store's rows in file order. A protocol's newest configuration is the ``protocol_hash`` of
    its row with the newest ``finished_at`` (the later row in the file on a tie).
    """
    newest: dict[str, tuple[str, int, str]] = {}
    for position, row in enumerate(rows):
        name, stamp = str(row.get("protocol")), str(row.get("finished_at") or "")
        if name not in newest or (stamp, position) >= newest[name][:2]:
            newest[name] = (stamp, position, str(row.get("protocol_hash")))
    shown: list[dict[str, Any]] = []
    left_out: OrderedDict[tuple[str, str], tuple[int, str]] = OrderedDict()
    for row in latest_rows(rows):
        name, digest = str(row.get("protocol")), str(row.get("protocol_hash"))
        if digest == newest[name][2]:
            shown.append(row)
        else:
            count, stamp = left_out.get((name, digest), (0, ""))
            left_out[(name, digest)] = (count + 1, max(stamp, str(row.get("finished_at") or "")))
    older = [
        OlderConfiguration(name, digest, count, stamp)
        for (name, digest), (count, stamp) in sorted(left_out.items(), key=lambda item: (item[0][0], item[1][1]))
    ]
    return shown, older


def _boards(rows: list[dict[str, Any]], older: list[OlderConfiguration], store: ResultStore) -> list[ProtocolBoard]:
    names = sorted({str(r.get("protocol")) for r in rows})
    return [
        ProtocolBoard(
            name, [r for r in rows if str(r.get("protocol")) == name], store, [o for o in older if o.protocol == name]
        )
        for name in names
    ]


def family_label(family: Any) -> str:
    """How a test generator's family is shown: "unknown" when none is known (a generator's fakes are never
    of family "real"; rows written before that was fixed may say so)."""
    return UNKNOWN_FAMILY if not family or family == REAL_FAMILY else str(family)


def threshold_is_meaningful(row: Mapping[str, Any]) -> bool:
    return row.get("threshold_policy", metrics.FIXED_POLICY) in metrics.MEANINGFUL_THRESHOLD_POLICIES


def shown_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's metrics as the leaderboard may show them: threshold metrics blanked under a meaningless policy."""
    values = dict(row.get("metrics") or {})
    if not threshold_is_meaningful(row):
        values.update({key: math.nan for key in metrics.THRESHOLD_METRICS})
    return values


# -- one protocol ----------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One number of a table with its interval; rendered as ``text`` (+ bold when it stands out) + ``suffix``."""

    value: float
    interval: tuple[float, float] = (math.nan, math.nan)
    text: str = ""
    suffix: str = ""
    bold: bool = False

    def render(self) -> str:
        return (f"**{self.text}**" if self.bold else self.text) + self.suffix


class ProtocolBoard:
    """The rows of one protocol configuration arranged by detector label, test generator and perturbation."""

    def __init__(
        self, name: str, rows: list[dict[str, Any]], store: ResultStore, older: Sequence[OlderConfiguration] = ()
    ) -> None:
        self.name = name
        self.rows = rows
        self.store = store
        self.older = list(older)
        self.ok = [r for r in rows if r.get("status") == OK]
        perturbations = list(OrderedDict.fromkeys(r.get("test_perturbation", CLEAN) for r in rows))
        self.clean = CLEAN if CLEAN in perturbations else (perturbations[0] if perturbations else CLEAN)
        self.perturbations = [self.clean] + [p for p in perturbations if p != self.clean]
        trained = {g for r in rows for g in (r.get("train_generators") or [])}
        self.train_generators = sorted(trained)
        self.seen = sorted(
            {r["test_generator"] for r in rows if r.get("seen_in_training") or r["test_generator"] in trained}
        )
        families: dict[str, str] = {}
        for row in sorted(rows, key=lambda r: r.get("status") != OK):  # ok rows first: their family is known
            families.setdefault(row["test_generator"], family_label(row.get("test_family")))
        self.families = families
        self.generators = sorted(families, key=lambda g: (g not in self.seen, families[g], g))
        unseen = [g for g in self.generators if g not in self.seen]
        seen = [g for g in self.generators if g in self.seen]
        self.groups: dict[str, list[str]] = (
            {UNSEEN: unseen, SEEN: seen} if unseen and seen else {ALL_GENERATORS: list(self.generators)}
        )
        self.rank_group = next(iter(self.groups))
        self.cells: dict[tuple[str, str, str], dict[str, Any]] = {
            (r["label"], r["test_generator"], r.get("test_perturbation", CLEAN)): r for r in self.ok
        }
        labels = list(OrderedDict.fromkeys(r["label"] for r in self.ok))
        self.means = {
            (label, p, group): metrics.average_metrics(self._metric_rows(label, p, generators))
            for label in labels
            for p in self.perturbations
            for group, generators in self.groups.items()
        }
        ranking = {label: self.means[(label, self.clean, self.rank_group)]["auc"] for label in labels}
        self.labels = sorted(labels, key=lambda label: _rank_key(ranking[label], label))
        self._mean_ci: dict[tuple[str, str], dict[str, list[float]]] = {}

    def _metric_rows(self, label: str, perturbation: str, generators: Sequence[str]) -> list[Mapping[str, Any] | None]:
        return [
            shown_metrics(self.cells[(label, g, perturbation)]) if (label, g, perturbation) in self.cells else None
            for g in generators
        ]

    def metric(self, label: str, generator: str, key: str, perturbation: str | None = None) -> float:
        row = self.cells.get((label, generator, perturbation or self.clean))
        return _finite(shown_metrics(row).get(key)) if row else math.nan

    def interval(self, label: str, generator: str, key: str) -> tuple[float, float]:
        row = self.cells.get((label, generator, self.clean))
        low, high = ((row or {}).get("metrics") or {}).get(f"{key}_ci") or (None, None)
        return _finite(low), _finite(high)

    def policy_shown(self, label: str) -> bool:
        """Whether every result row of ``label`` has a threshold worth showing accuracies for."""
        return all(threshold_is_meaningful(r) for r in self.ok if r["label"] == label)

    def mean_ci(self, label: str, group: str | None = None) -> dict[str, list[float]]:
        """Bootstrap intervals of the mean AUC/AP over a group of test generators (clean), from the sidecars.

        NaN when the mean itself is undefined, a sidecar is missing, or the rows asked for no bootstrap.
        """
        group = group or self.rank_group
        if (label, group) not in self._mean_ci:
            empty = {"auc_ci": [math.nan, math.nan], "ap_ci": [math.nan, math.nan]}
            rows = [self.cells.get((label, g, self.clean)) for g in self.groups[group]]
            present = [row for row in rows if row]
            sidecars = {row["test_generator"]: self.store.load_sidecar(row["row_id"]) for row in present}
            found = {generator: sidecar for generator, sidecar in sidecars.items() if sidecar is not None}
            usable = bool(rows) and len(present) == len(rows) and len(found) == len(sidecars)
            n = int(present[0].get("bootstrap") or 0) if usable else 0
            if usable and n:
                sets = [(s.labels, s.scores) for s in found.values()]
                self._mean_ci[(label, group)] = metrics.mean_intervals(
                    sets, n, int(present[0].get("seed") or 0), ids=image_ids(found)
                )
            else:
                self._mean_ci[(label, group)] = empty
        return self._mean_ci[(label, group)]

    def first(self, key: str, default: Any = None) -> Any:
        for row in self.rows:
            if row.get(key) not in (None, "", {}, []):
                return row[key]
        return default

    # -- markdown ----------------------------------------------------------------------------------------
    def markdown(self) -> str:
        parts = [f"## {self.name}", ""]
        description = self.first("protocol_description")
        if description:
            parts += [f"> {description}", ""]
        dataset = self.first("dataset", {})
        preprocess = self.first("preprocess", {})
        ranking = {
            UNSEEN: "Detectors are ranked by their mean over the test generators unseen in training; the "
            "seen ones have their own mean.",
            ALL_GENERATORS: "Detectors are ranked by their mean over every test generator.",
        }[self.rank_group]
        parts += [
            f"Dataset **{dataset.get('name', '?')}** (fingerprint `{dataset.get('fingerprint', '?')}`), "
            f"trained on **{', '.join(self.train_generators) or '?'}**, preprocessing "
            f"`{preprocess.get('key', '?')}`, train perturbation `{self.first('train_perturbation', 'none')}`, "
            f"seed {self.first('seed', 0)}, {self.first('bootstrap', 0)} bootstrap replicates, configuration "
            f"`{self.first('protocol_hash', '?')}`. Columns marked (train) were seen in training. {ranking}",
            "",
        ]
        if self.older:
            parts += [
                "Older results not shown (another configuration of this protocol): "
                + "; ".join(o.note() for o in self.older)
                + ".",
                "",
            ]
        families: dict[str, list[str]] = {}
        for generator in self.generators:
            families.setdefault(self.families[generator], []).append(generator)
        parts += ["Generator families: " + "; ".join(f"{f}: {', '.join(g)}" for f, g in families.items()), ""]
        if self.labels:
            parts += self._ranked_table("ROC-AUC", "auc", heatmap=True)
            parts += self._ranked_table("Average precision", "ap")
            parts += self._accuracy_tables()
            parts += self._robustness_table()
            parts += self._roc_section()
            parts += self._ci_details()
            parts += self._extra_section()
        else:
            parts += ["No detector finished on this protocol.", ""]
        parts += self._problems_section()
        parts += self._provenance_section()
        return "\n".join(parts)

    def _header(self) -> list[str]:
        return [f"{g} (train)" if g in self.seen else g for g in self.generators]

    def _mean_headers(self, interval: bool = True) -> list[str]:
        return [GROUP_TITLES[group] + (" [95% CI]" if interval else "") for group in self.groups]

    def _mean_cell(
        self, label: str, key: str, group: str, perturbation: str | None = None, interval: bool = True
    ) -> Cell:
        mean = self.means[(label, perturbation or self.clean, group)]
        value = _finite(mean[key])
        if not math.isfinite(value):
            return Cell(value, text=_missing(mean, key))
        low, high = self.mean_ci(label, group)[f"{key}_ci"] if interval and key in ("auc", "ap") else (math.nan,) * 2
        suffix = f" [{_fmt(low)}, {_fmt(high)}]" if math.isfinite(low) and math.isfinite(high) else ""
        return Cell(value, (low, high), _fmt(value), suffix)

    def _ranked_table(self, title: str, key: str, heatmap: bool = False) -> list[str]:
        table: list[list[Any]] = []
        for label in self.labels:
            cells = [
                Cell(self.metric(label, g, key), self.interval(label, g, key), _fmt(self.metric(label, g, key)))
                for g in self.generators
            ]
            cells += [self._mean_cell(label, key, group) for group in self.groups]
            table.append([label, *cells])
        _bold_separated(table)
        lines = [
            f"### {title} ({_condition(self.clean)})",
            "",
            _tabulate(_rendered(table), ["Detector", *self._header(), *self._mean_headers()]),
            "",
        ]
        lines += self._footnotes(table)
        if heatmap:
            lines += [f"![{title} heatmap](plots/{_slug(self.name)}-auc.png)", ""]
        return lines

    def _accuracy_tables(self) -> list[str]:
        summary = []
        for label in self.labels:
            shown = self.policy_shown(label)
            cells = [
                Cell(math.nan, text=NOT_MEANINGFUL)
                if key in metrics.THRESHOLD_METRICS and not shown
                else self._mean_cell(label, key, self.rank_group, interval=False)
                for key, _ in SUMMARY_COLUMNS
            ]
            row = next(r for r in self.ok if r["label"] == label)
            summary.append([label, *cells, _threshold_text(row)])
        per_generator = []
        for label in self.labels:
            texts = []
            for g in self.generators:
                cell_row = self.cells.get((label, g, self.clean))
                acc = self.metric(label, g, "acc")
                if cell_row is not None and not threshold_is_meaningful(cell_row):
                    texts.append(NOT_MEANINGFUL)
                else:
                    texts.append(
                        DASH
                        if not math.isfinite(acc)
                        else f"{_fmt(acc)} ({_fmt(self.metric(label, g, 'real_acc'))} / "
                        f"{_fmt(self.metric(label, g, 'fake_acc'))})"
                    )
            per_generator.append([label, *texts])
        scope = {UNSEEN: "unseen test generators", ALL_GENERATORS: "test generators"}[self.rank_group]
        lines = [
            f"### Accuracy ({_condition(self.clean)}, mean over {scope})",
            "",
            _tabulate(_rendered(summary), ["Detector", *(name for _, name in SUMMARY_COLUMNS), "threshold (policy)"]),
            "",
        ]
        lines += self._footnotes(summary + per_generator)
        lines += [
            "Accuracy at the detector's threshold per test generator, as overall (real / fake):",
            "",
            _tabulate(per_generator, ["Detector", *self._header()]),
            "",
        ]
        return lines

    def _footnotes(self, table: list[list[Any]]) -> list[str]:
        texts = [c.render() if isinstance(c, Cell) else str(c) for row in table for c in row[1:]]
        notes = []
        if any(" generators)" in t for t in texts):
            notes.append(MISSING_NOTE)
        if any(t == NOT_MEANINGFUL for t in texts):
            notes.append(FIXED_NOTE)
        return [line for note in notes for line in (f"<sub>{note}</sub>", "")]

    def _robustness_table(self) -> list[str]:
        if len(self.perturbations) < 2:
            return []
        table = []
        for label in self.labels:
            base = self._mean_cell(label, "auc", self.rank_group, interval=False)
            cells = [base]
            for p in self.perturbations[1:]:
                cell = self._mean_cell(label, "auc", self.rank_group, p, interval=False)
                delta = cell.value - base.value
                change = f" ({delta:+.3f})" if math.isfinite(delta) else ""
                cells.append(Cell(cell.value, text=cell.text, suffix=change))
            table.append([label, *cells])
        scope = {UNSEEN: "mean ROC-AUC over unseen generators", ALL_GENERATORS: "mean ROC-AUC"}[self.rank_group]
        return [
            f"### Robustness: {scope} per test perturbation (change from clean)",
            "",
            _tabulate(_rendered(table), ["Detector", *(_condition(p) for p in self.perturbations)]),
            "",
            *self._footnotes(table),
        ]

    def _roc_section(self) -> list[str]:
        return [f"![ROC curves](plots/{_slug(self.name)}-roc.png)", ""]

    def _ci_details(self) -> list[str]:
        table = []
        for label in self.labels:
            cells = []
            for g in self.generators:
                value = self.metric(label, g, "auc")
                low, high = self.interval(label, g, "auc")
                cells.append(
                    DASH
                    if not math.isfinite(value)
                    else f"{_fmt(value)} [{_fmt(low)}, {_fmt(high)}]"
                    if math.isfinite(low)
                    else _fmt(value)
                )
            table.append([label, *cells])
        return [
            "<details><summary>ROC-AUC per test generator with 95% bootstrap intervals</summary>",
            "",
            _tabulate(table, ["Detector", *self._header()]),
            "",
            "</details>",
            "",
        ]

    def _extra_section(self) -> list[str]:
        lines: list[str] = []
        for label in self.labels:
            per_generator = {
                g: self.cells[(label, g, self.clean)].get("extra") or {}
                for g in self.generators
                if (label, g, self.clean) in self.cells
            }
            per_generator = {g: e for g, e in per_generator.items() if e}
            if not per_generator:
                continue
            scalars: dict[str, dict[str, Any]] = OrderedDict()
            matrices: list[tuple[str, str, Any]] = []
            for generator, extra in per_generator.items():
                flat, found = flatten_extra(extra)
                for key, value in flat.items():
                    scalars.setdefault(key, {})[generator] = value
                matrices.extend((generator, key, matrix) for key, matrix in found)
            columns = list(per_generator)
            lines += [f"<details><summary>{label}: method-specific results ({_condition(self.clean)})</summary>", ""]
            if scalars:
                table = [[key, *(_cell(values.get(g)) for g in columns)] for key, values in scalars.items()]
                lines += [_tabulate(table, ["Result", *columns]), ""]
            for generator, key, matrix in matrices:
                lines += [f"**{key}** on {generator}:", "", _matrix_table(matrix), ""]
            lines += ["</details>", ""]
        if lines:
            lines = ["### Method-specific results", "", *lines]
        return lines

    def _problems_section(self) -> list[str]:
        seen: OrderedDict[tuple, list[str]] = OrderedDict()
        for row in self.rows:
            if row.get("status") == OK:
                if row.get("n_skipped"):
                    reasons = ", ".join(
                        f"{count} {reason}" for reason, count in (row.get("skipped_reasons") or {}).items()
                    )
                    key: tuple[Any, ...] = (
                        row.get("label"),
                        "images not scored",
                        f"{row['n_skipped']} NaN score(s): {reasons}",
                    )
                    seen.setdefault(key, []).append(f"{row.get('test_generator')}/{row.get('test_perturbation')}")
                continue
            error = row.get("error") or {}
            reason = (
                row.get("reason")
                or f"{error.get('type', '?')} in {error.get('stage', '?')}: {_one_line(error.get('message', ''))}"
            )
            key = (row.get("label"), row.get("status"), reason)
            seen.setdefault(key, []).append(f"{row.get('test_generator')}/{row.get('test_perturbation')}")
        if not seen:
            return []
        table = [
            [label, status, _where(cells, len(self.generators) * len(self.perturbations)), reason]
            for (label, status, reason), cells in seen.items()
        ]
        return ["### Skipped and failed", "", _tabulate(table, ["Detector", "Status", "Where", "Reason"]), ""]

    def _provenance_section(self) -> list[str]:
        table = []
        for label in list(OrderedDict.fromkeys(r["label"] for r in self.rows)):
            rows = [r for r in self.rows if r["label"] == label]
            row = next((r for r in rows if r.get("status") == OK), rows[0])
            describe = row.get("describe") or {}
            table.append(
                [
                    label,
                    f"`{row.get('params_hash', '')}`",
                    _describe(describe) or DASH,
                    _fmt(max(r.get("fit_seconds") or 0 for r in rows), 1),
                    _fmt(sum(r.get("score_seconds") or 0 for r in rows), 1),
                    "yes" if any(r.get("model_reused") for r in rows) else "no",
                ]
            )
        counts = self.first("counts", {})
        versions = self.first("versions", {})
        commits = sorted({str(r.get("commit", "unknown"))[:12] for r in self.rows})
        dataset = self.first("dataset", {})
        return [
            "### Provenance",
            "",
            _tabulate(
                table,
                ["Detector", "params hash", "describe (weights identity, ...)", "fit s", "score s", "model reused"],
            ),
            "",
            f"- dataset `{dataset.get('name')}` (source `{dataset.get('source')}`, layout `{dataset.get('layout')}`,"
            f" fingerprint `{dataset.get('fingerprint')}`); training set {counts.get('train_real', '?')} real + "
            f"{counts.get('train_fake', '?')} fake; cap per class {self.first('cap_per_class') or 'none'}",
            f"- preprocessing `{(self.first('preprocess') or {}).get('key')}`; test perturbations "
            f"{', '.join(f'`{p}`' for p in self.perturbations)}",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
            f"- dfzoo commit(s): {', '.join(f'`{c}`' for c in commits)}",
            "",
        ]

    # -- plots ---------------------------------------------------------------------------------------------
    def plots(self, folder: Path) -> list[Path]:
        from . import plots

        if not self.labels:
            return []
        grid = np.array([[self.metric(label, g, "auc") for g in self.generators] for label in self.labels])
        means = [self.means[(label, self.clean, self.rank_group)]["auc"] for label in self.labels]
        written = [
            plots.auc_heatmap(
                f"{self.name}: ROC-AUC ({_condition(self.clean)})",
                self.labels,
                self.generators,
                grid,
                folder / f"{_slug(self.name)}-auc.png",
                self.seen,
                means,
                mean_label=GROUP_TITLES[self.rank_group].lower(),
            )
        ]
        curves: dict[str, list[tuple[str, np.ndarray, np.ndarray, float]]] = {}
        for generator in self.generators:
            for label in self.labels:
                row = self.cells.get((label, generator, self.clean))
                loaded = self.store.load_scores(row["row_id"]) if row else None
                if loaded is None:
                    continue
                fpr, tpr, _ = metrics.roc_points(*loaded)
                if fpr.size:
                    curves.setdefault(generator, []).append((label, fpr, tpr, self.metric(label, generator, "auc")))
        if curves:
            written.append(
                plots.roc_grid(
                    f"{self.name}: ROC curves ({_condition(self.clean)})",
                    curves,
                    folder / f"{_slug(self.name)}-roc.png",
                    self.seen,
                )
            )
        return written

    def summary(self, intervals: bool = True) -> list[dict[str, Any]]:
        """Per detector: means per perturbation and generator group, intervals of the clean means, row counts.

        ``rank_group`` names the group the ranking uses (``"unseen"`` or ``"all"``); undefined means are NaN.
        """
        out = []
        for label in [
            *self.labels,
            *(name for name in OrderedDict.fromkeys(r["label"] for r in self.rows) if name not in self.labels),
        ]:
            rows = [r for r in self.rows if r["label"] == label]
            entry = {
                "label": label,
                "detector": rows[0].get("detector"),
                "rank_group": self.rank_group,
                "status": {s: sum(r.get("status") == s for r in rows) for s in (OK, ERROR, SKIPPED)},
            }
            if label in self.labels:
                entry["mean"] = {
                    p: {group: self.means[(label, p, group)] for group in self.groups} for p in self.perturbations
                }
                if intervals:
                    entry["mean_ci"] = {group: self.mean_ci(label, group) for group in self.groups}
            out.append(entry)
        return out


def image_ids(sidecars: Mapping[str, Sidecar]) -> list[np.ndarray]:
    """Per test set (keyed by generator), the id of each image, so that shared images are resampled jointly.

    Recorded ids are used as they are. Sidecars written before ids were recorded name their reals by the
    whole vector of real scores: the harness scores the shared reals once per perturbation and puts them in
    every test set in the same order, so identical real-score vectors are the same reals; fakes are the test
    generator's own.
    """
    out = []
    for generator, sidecar in sidecars.items():
        if sidecar.ids is not None:
            out.append(sidecar.ids.astype(object))
            continue
        reals = sidecar.labels == 0
        digest = hashlib.sha256(np.ascontiguousarray(sidecar.scores[reals]).tobytes()).hexdigest()[:16]
        ids = np.empty(sidecar.labels.size, dtype=object)
        ids[reals] = [f"reals-{digest}:{i}" for i in range(int(reals.sum()))]
        ids[~reals] = [f"{generator}:fake:{i}" for i in range(int((~reals).sum()))]
        out.append(ids)
    return out


# -- documents -------------------------------------------------------------------------------------------
def _document(
    title: str,
    store_dir: str | Path,
    rows: list[dict[str, Any]],
    older: list[OlderConfiguration],
    boards: list[ProtocolBoard],
) -> str:
    as_of = max((str(r.get("finished_at") or "") for r in rows), default="") or "no results"
    labels = {r.get("label") for r in rows}
    hidden = sum(o.rows for o in older)
    lines = [
        f"# {title}",
        "",
        f"{len(boards)} protocol(s), {len(labels)} detector configuration(s), {len(rows)} result rows"
        + (f" ({hidden} older row(s) of earlier protocol configurations not shown)" if hidden else "")
        + f"; latest result {as_of}. Regenerate with `dfzoo leaderboard --store {_relative(store_dir)} --out "
        f"DIR`; check every number against the stored scores with `dfzoo leaderboard --check --store "
        f"{_relative(store_dir)}`; every row shown is in `results.csv` / `results.json`.",
        "",
    ]
    if boards:
        lines += ["Protocols: " + ", ".join(f"[{b.name}](#{_anchor(b.name)})" for b in boards), ""]
    lines += [
        "How to read: higher is better except EER. ROC-AUC and AP need no threshold. Accuracies use the "
        "detector's threshold (a score at or above it means fake) and are shown only when that threshold "
        "means something: the detector states it (`detector`), or it lets through a fixed share of the "
        "training reals (`train_real_quantile`); a fixed 0.5 on scores that need not be probabilities "
        '(`fixed`) gets no accuracy. "best-thr acc" picks the best threshold on the test set itself (an '
        "oracle bound). Intervals are 95% stratified bootstrap percentiles. A detector has a mean only when "
        "it has a value on every test generator of that mean. Where a protocol has test generators unseen "
        "in training, detectors are ranked by the mean over those (undefined means last) and the seen "
        "generators get a mean of their own. The test sets of a protocol share the same real images, so "
        "the interval of a mean resamples those shared reals once per replicate for every generator (each "
        "generator's fakes separately): the test sets are not independent, and resampling them as if they "
        "were would give intervals that are too narrow. A value is in bold only when its interval lies "
        "above the interval of every other detector in its column (no interval, no bold).",
        "",
    ]
    for board in boards:
        lines += [board.markdown(), ""]
    return "\n".join(lines).rstrip() + "\n"


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    columns = [
        "protocol",
        "protocol_hash",
        "label",
        "detector",
        "test_generator",
        "test_family",
        "seen_in_training",
        "test_perturbation",
        "status",
        *CSV_METRICS,
        "auc_ci_low",
        "auc_ci_high",
        "ap_ci_low",
        "ap_ci_high",
        "threshold",
        "threshold_policy",
        "threshold_fpr",
        "params_hash",
        "dataset",
        "dataset_fingerprint",
        "preprocess",
        "train_perturbation",
        "train_generators",
        "seed",
        "commit",
        "fit_seconds",
        "score_seconds",
        "finished_at",
        "reason",
        "row_id",
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            values = row.get("metrics") or {}
            error = row.get("error") or {}
            record = {key: row.get(key) for key in columns if key in row}
            record.update({key: values.get(key) for key in CSV_METRICS})
            for key in ("auc", "ap"):
                ci = values.get(f"{key}_ci") or [None, None]
                record[f"{key}_ci_low"], record[f"{key}_ci_high"] = ci
            record.update(
                {
                    "test_family": family_label(row.get("test_family")),
                    "dataset": (row.get("dataset") or {}).get("name"),
                    "dataset_fingerprint": (row.get("dataset") or {}).get("fingerprint"),
                    "preprocess": (row.get("preprocess") or {}).get("key"),
                    "train_generators": ";".join(row.get("train_generators") or []),
                    "reason": row.get("reason")
                    or (f"{error.get('type')}: {_one_line(error.get('message', ''))}" if error else ""),
                }
            )
            writer.writerow(record)
    return path


def _write_json(
    path: Path, rows: list[dict[str, Any]], older: list[OlderConfiguration], boards: list[ProtocolBoard]
) -> Path:
    document = {
        "protocols": {b.name: b.summary() for b in boards},
        "rows": rows,
        "older_configurations": [vars(o) for o in older],
    }
    path.write_text(json.dumps(clean_json(document), indent=1, sort_keys=True) + "\n")
    return path


def summary_table(store_dir: str | Path, protocols: Sequence[str] | None = None) -> str:
    """A short plain-text table (for the end of ``dfzoo run``): the ranking mean of clean AUC/AP/acc per detector."""
    store = ResultStore(store_dir)
    rows, older = current_configurations(store.rows())
    table = []
    for board in _boards(rows, older, store):
        if protocols is not None and board.name not in protocols:
            continue
        for entry in board.summary(intervals=False):
            mean = entry.get("mean", {}).get(board.clean, {}).get(board.rank_group)
            if mean is None:  # no result row: its errors are counted in the last column
                values = [DASH] * 3
            else:
                values = [
                    _missing(mean, "auc"),
                    _missing(mean, "ap"),
                    _missing(mean, "acc") if board.policy_shown(entry["label"]) else NOT_MEANINGFUL,
                ]
            status = entry["status"]
            table.append(
                [
                    board.name,
                    entry["label"],
                    board.rank_group,
                    *values,
                    ", ".join(f"{n} {s}" for s, n in status.items() if n),
                ]
            )
    return _tabulate(
        table, ["protocol", "detector", "generators", "mean AUC", "mean AP", "mean acc", "rows"], fmt="simple"
    )


# -- formatting helpers ----------------------------------------------------------------------------------
def flatten_extra(extra: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """``(scalars by dotted key, [(key, matrix)])`` from a detector's extra metrics."""
    scalars: dict[str, Any] = {}
    matrices: list[tuple[str, Any]] = []
    for key, value in extra.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and "matrix" in value and _is_matrix(value["matrix"]):
            matrices.append((name, value))
        elif isinstance(value, Mapping):
            inner_scalars, inner_matrices = flatten_extra(value, f"{name}.")
            scalars.update(inner_scalars)
            matrices.extend(inner_matrices)
        elif _is_matrix(value):
            matrices.append((name, value))
        elif isinstance(value, list):
            scalars[name] = ", ".join(_cell(v) for v in value)
        else:
            scalars[name] = value
    return scalars, matrices


def _is_matrix(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(r, list) and r for r in value)
        and len({len(r) for r in value}) == 1
        and all(isinstance(v, (int, float)) or v is None for r in value for v in r)
    )


def _matrix_table(value: Any) -> str:
    if isinstance(value, Mapping):
        matrix = value["matrix"]
        labels = [str(x) for x in value.get("labels") or []]
    else:
        matrix, labels = value, []
    rows_labels = labels if len(labels) == len(matrix) else [str(i) for i in range(len(matrix))]
    column_labels = labels if len(labels) == len(matrix[0]) else [str(j) for j in range(len(matrix[0]))]
    table = [[rows_labels[i], *(_cell(v) for v in row)] for i, row in enumerate(matrix)]
    return _tabulate(table, ["", *column_labels])


def _tabulate(table: list[list[Any]], headers: list[str], fmt: str = "github") -> str:
    from tabulate import tabulate

    cells = [[_fmt(v) if isinstance(v, float) else v for v in row] for row in table]
    if fmt == "github":  # a "|" inside a cell would end it
        cells = [[str(v).replace("|", "\\|") for v in row] for row in cells]
        headers = [h.replace("|", "\\|") for h in headers]
    return tabulate(cells, headers=headers, tablefmt=fmt, disable_numparse=True)


def _bold_separated(table: list[list[Any]]) -> None:
    """Bold the best (highest) :class:`Cell` of each column when its interval lies above every other finite
    cell's interval; a tie for best, or a missing interval on either side, gives no bold."""
    for column in range(1, len(table[0]) if table else 0):
        cells = [row[column] for row in table if isinstance(row[column], Cell) and math.isfinite(row[column].value)]
        if len(cells) < 2:
            continue
        cells.sort(key=lambda cell: -cell.value)
        best, others = cells[0], cells[1:]
        bounds = [best.interval[0], *(cell.interval[1] for cell in others)]
        if (
            others[0].value < best.value
            and all(math.isfinite(b) for b in bounds)
            and all(cell.interval[1] < best.interval[0] for cell in others)
        ):
            best.bold = True


def _rendered(table: list[list[Any]]) -> list[list[Any]]:
    return [[cell.render() if isinstance(cell, Cell) else cell for cell in row] for row in table]


def _missing(mean: Mapping[str, Any], key: str) -> str:
    """A mean's value, or a dash with how many of its test generators had a value when it is undefined."""
    value = _finite(mean.get(key))
    if math.isfinite(value):
        return _fmt(value)
    defined, total = (mean.get("defined") or {}).get(key, 0), mean.get("n_sets", 0)
    return f"{DASH} ({defined}/{total} generators)" if total and defined < total else DASH


def _rank_key(value: Any, label: str) -> tuple[bool, float, str]:
    """Sort key: finite values first, highest first; undefined (NaN) last; then by label."""
    value = _finite(value)
    return (not math.isfinite(value), -value if math.isfinite(value) else 0.0, label)


def _threshold_text(row: Mapping[str, Any]) -> str:
    policy = row.get("threshold_policy", metrics.FIXED_POLICY)
    if policy == metrics.TRAIN_REAL_QUANTILE_POLICY and row.get("threshold_fpr") is not None:
        policy = f"{policy}, FPR {_fmt(row.get('threshold_fpr'), 2)} on training reals"
    return f"{_fmt(row.get('threshold'))} ({policy})"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _cell(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _fmt(value)


def _finite(value: Any) -> float:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else math.nan
    )


def _condition(perturbation: str) -> str:
    return "clean" if perturbation == CLEAN else perturbation


def _describe(describe: Mapping[str, Any]) -> str:
    flat, _ = flatten_extra(describe)
    return "; ".join(f"{k}={_cell(v)}" for k, v in flat.items())


def _where(cells: list[str], total: int) -> str:
    return "all test sets" if len(cells) >= total else ", ".join(cells)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def _anchor(name: str) -> str:
    return "".join(c for c in name.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def _relative(path: str | Path) -> str:
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


__all__ = ["ProtocolBoard", "flatten_extra", "render_leaderboard", "summary_table"]
