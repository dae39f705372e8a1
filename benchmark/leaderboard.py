"""Render a result store as a leaderboard: Markdown (one section per protocol), CSV, JSON and PNG plots.

Only the latest row of each (protocol, detector label, test generator, test perturbation) is shown, so a
retried or re-configured run replaces what it recomputed. Every number comes from the rows (computed by
:mod:`dfzoo.benchmark.metrics`) or, for intervals of means and ROC curves, from ``metrics`` applied to the
raw-score sidecars.

A detector's ``extra_metrics()`` is rendered generically: nested dicts are flattened to dotted keys, lists of
equal-length number lists are drawn as small matrices, and ``{"labels": [...], "matrix": [[...]]}`` as a
matrix with named rows and columns (e.g. a confusion matrix).
"""
from __future__ import annotations

import csv
import json
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics
from .store import ERROR, OK, SKIPPED, ResultStore, clean_json, latest_rows

CLEAN = "none"
DASH = "–"
CSV_METRICS = ("auc", "ap", "acc", "real_acc", "fake_acc", "best_acc", "eer", "tpr_at_1fpr", "tpr_at_5fpr",
               "n_real", "n_fake", "n_nan")
SUMMARY_COLUMNS = [("acc", "acc@thr"), ("real_acc", "real acc"), ("fake_acc", "fake acc"),
                   ("best_acc", "best-thr acc (oracle)"), ("eer", "EER"), ("tpr_at_1fpr", "TPR@1%FPR"),
                   ("tpr_at_5fpr", "TPR@5%FPR")]


def render_leaderboard(store_dir: str | Path, out_dir: str | Path, *, title: str = "dfzoo leaderboard",
                       plots: bool = True) -> list[Path]:
    """Write ``README.md``, ``results.csv``, ``results.json`` and ``plots/*.png`` into ``out_dir``.

    Returns the paths written. The output depends only on the store's content (no wall-clock date), so
    regenerating an unchanged leaderboard gives the same files.
    """
    store = ResultStore(store_dir)
    rows = latest_rows(store.rows())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    boards = [ProtocolBoard(name, [r for r in rows if r.get("protocol") == name], store)
              for name in sorted({str(r.get("protocol")) for r in rows})]
    if plots:
        for board in boards:
            written.extend(board.plots(out / "plots"))
    markdown = out / "README.md"
    markdown.write_text(_document(title, store_dir, rows, boards))
    written.insert(0, markdown)
    written.append(_write_csv(out / "results.csv", rows))
    written.append(_write_json(out / "results.json", rows, boards))
    return written


# -- one protocol ----------------------------------------------------------------------------------------
class ProtocolBoard:
    """The rows of one protocol arranged by detector label, test generator and perturbation."""

    def __init__(self, name: str, rows: list[dict[str, Any]], store: ResultStore) -> None:
        self.name = name
        self.rows = rows
        self.store = store
        self.ok = [r for r in rows if r.get("status") == OK]
        perturbations = list(OrderedDict.fromkeys(r.get("test_perturbation", CLEAN) for r in rows))
        self.clean = CLEAN if CLEAN in perturbations else (perturbations[0] if perturbations else CLEAN)
        self.perturbations = [self.clean] + [p for p in perturbations if p != self.clean]
        self.seen = sorted({g for r in rows for g in (r.get("train_generators") or [])})
        families = {r["test_generator"]: r.get("test_family") or "" for r in rows}
        self.generators = sorted(families, key=lambda g: (g not in self.seen, families[g], g))
        self.families = families
        self.cells: dict[tuple[str, str, str], dict[str, Any]] = {
            (r["label"], r["test_generator"], r.get("test_perturbation", CLEAN)): r for r in self.ok}
        self.means = {(label, p): metrics.average_metrics(self._metric_rows(label, p))
                      for label in self._labels() for p in self.perturbations}
        self.labels = sorted(self._labels(), key=lambda label: (-_finite(self.means[(label, self.clean)]["auc"]),
                                                                label))
        self._mean_ci: dict[str, dict[str, list[float]]] = {}

    def _labels(self) -> list[str]:
        return list(OrderedDict.fromkeys(r["label"] for r in self.ok))

    def _metric_rows(self, label: str, perturbation: str) -> list[Mapping[str, Any]]:
        return [self.cells[(label, g, perturbation)]["metrics"] for g in self.generators
                if (label, g, perturbation) in self.cells]

    def metric(self, label: str, generator: str, key: str, perturbation: str | None = None) -> float:
        row = self.cells.get((label, generator, perturbation or self.clean))
        return _finite(row["metrics"].get(key)) if row else math.nan

    def mean_ci(self, label: str) -> dict[str, list[float]]:
        """Bootstrap intervals of the mean AUC/AP over test generators (clean condition), from sidecars."""
        if label not in self._mean_ci:
            sets, n, seed = [], 0, 0
            for generator in self.generators:
                row = self.cells.get((label, generator, self.clean))
                scores = self.store.load_scores(row["row_id"]) if row else None
                if scores is not None:
                    sets.append(scores)
                    n, seed = int(row.get("bootstrap") or 0), int(row.get("seed") or 0)
            empty = {"auc_ci": [math.nan, math.nan], "ap_ci": [math.nan, math.nan]}
            complete = len(sets) == sum((label, g, self.clean) in self.cells for g in self.generators)
            self._mean_ci[label] = metrics.mean_intervals(sets, n, seed) if sets and n and complete else empty
        return self._mean_ci[label]

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
        parts += [f"Dataset **{dataset.get('name', '?')}** (fingerprint `{dataset.get('fingerprint', '?')}`), "
                  f"trained on **{', '.join(self.seen) or '?'}**, preprocessing `{preprocess.get('key', '?')}`, "
                  f"train perturbation `{self.first('train_perturbation', 'none')}`, seed {self.first('seed', 0)}, "
                  f"{self.first('bootstrap', 0)} bootstrap replicates. Columns marked (train) were seen in training.",
                  ""]
        families: dict[str, list[str]] = {}
        for generator in self.generators:
            families.setdefault(self.families[generator] or "?", []).append(generator)
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

    def _ranked_table(self, title: str, key: str, heatmap: bool = False) -> list[str]:
        table = []
        for label in self.labels:
            values = [self.metric(label, g, key) for g in self.generators]
            mean = self.means[(label, self.clean)][key]
            low, high = self.mean_ci(label)[f"{key}_ci"]
            interval = f" [{_fmt(low)}, {_fmt(high)}]" if math.isfinite(low) else ""
            table.append([label, *values, f"**{_fmt(mean)}**{interval}"])
        _bold_best(table, range(1, len(self.generators) + 1))
        lines = [f"### {title} ({_condition(self.clean)})", "",
                 _tabulate(table, ["Detector", *self._header(), "Mean [95% CI]"]), ""]
        if heatmap:
            lines += [f"![{title} heatmap](plots/{_slug(self.name)}-auc.png)", ""]
        return lines

    def _accuracy_tables(self) -> list[str]:
        summary = []
        for label in self.labels:
            mean = self.means[(label, self.clean)]
            row = self.cells[next(k for k in self.cells if k[0] == label)]
            summary.append([label, *(_fmt(mean[key]) for key, _ in SUMMARY_COLUMNS),
                            f"{_fmt(row.get('threshold'))} ({row.get('threshold_policy', 'fixed')})"])
        per_generator = []
        for label in self.labels:
            cells = []
            for g in self.generators:
                acc = self.metric(label, g, "acc")
                cells.append(DASH if not math.isfinite(acc) else
                             f"{_fmt(acc)} ({_fmt(self.metric(label, g, 'real_acc'))} / "
                             f"{_fmt(self.metric(label, g, 'fake_acc'))})")
            per_generator.append([label, *cells])
        return [f"### Accuracy ({_condition(self.clean)}, mean over test generators)", "",
                _tabulate(summary, ["Detector", *(name for _, name in SUMMARY_COLUMNS), "threshold (policy)"]), "",
                "Accuracy at the detector's threshold per test generator, as overall (real / fake):", "",
                _tabulate(per_generator, ["Detector", *self._header()]), ""]

    def _robustness_table(self) -> list[str]:
        if len(self.perturbations) < 2:
            return []
        table = []
        for label in self.labels:
            base = self.means[(label, self.clean)]["auc"]
            cells = [_fmt(base)]
            for p in self.perturbations[1:]:
                value = self.means[(label, p)]["auc"]
                delta = value - base
                cells.append(_fmt(value) + (f" ({delta:+.3f})" if math.isfinite(delta) else ""))
            table.append([label, *cells])
        return ["### Robustness: mean ROC-AUC per test perturbation (change from clean)", "",
                _tabulate(table, ["Detector", *(_condition(p) for p in self.perturbations)]), ""]

    def _roc_section(self) -> list[str]:
        return [f"![ROC curves](plots/{_slug(self.name)}-roc.png)", ""]

    def _ci_details(self) -> list[str]:
        table = []
        for label in self.labels:
            cells = []
            for g in self.generators:
                row = self.cells.get((label, g, self.clean))
                ci = (row or {}).get("metrics", {}).get("auc_ci") or [None, None]
                value = self.metric(label, g, "auc")
                cells.append(DASH if not math.isfinite(value) else
                             f"{_fmt(value)} [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci[0] is not None else _fmt(value))
            table.append([label, *cells])
        return ["<details><summary>ROC-AUC per test generator with 95% bootstrap intervals</summary>", "",
                _tabulate(table, ["Detector", *self._header()]), "", "</details>", ""]

    def _extra_section(self) -> list[str]:
        lines: list[str] = []
        for label in self.labels:
            per_generator = {g: self.cells[(label, g, self.clean)].get("extra") or {}
                             for g in self.generators if (label, g, self.clean) in self.cells}
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
                    reasons = ", ".join(f"{count} {reason}" for reason, count in (row.get("skipped_reasons") or {}).items())
                    key = (row.get("label"), "images not scored", f"{row['n_skipped']} NaN score(s): {reasons}")
                    seen.setdefault(key, []).append(f"{row.get('test_generator')}/{row.get('test_perturbation')}")
                continue
            error = row.get("error") or {}
            reason = row.get("reason") or f"{error.get('type', '?')} in {error.get('stage', '?')}: " \
                                            f"{_one_line(error.get('message', ''))}"
            key = (row.get("label"), row.get("status"), reason)
            seen.setdefault(key, []).append(f"{row.get('test_generator')}/{row.get('test_perturbation')}")
        if not seen:
            return []
        table = [[label, status, _where(cells, len(self.generators) * len(self.perturbations)), reason]
                 for (label, status, reason), cells in seen.items()]
        return ["### Skipped and failed", "", _tabulate(table, ["Detector", "Status", "Where", "Reason"]), ""]

    def _provenance_section(self) -> list[str]:
        table = []
        for label in list(OrderedDict.fromkeys(r["label"] for r in self.rows)):
            rows = [r for r in self.rows if r["label"] == label]
            row = next((r for r in rows if r.get("status") == OK), rows[0])
            describe = row.get("describe") or {}
            table.append([label, f"`{row.get('params_hash', '')}`", _describe(describe) or DASH,
                          _fmt(max(r.get("fit_seconds") or 0 for r in rows), 1),
                          _fmt(sum(r.get("score_seconds") or 0 for r in rows), 1),
                          "yes" if any(r.get("model_reused") for r in rows) else "no"])
        counts = self.first("counts", {})
        versions = self.first("versions", {})
        commits = sorted({str(r.get("commit", "unknown"))[:12] for r in self.rows})
        dataset = self.first("dataset", {})
        return ["### Provenance", "",
                _tabulate(table, ["Detector", "params hash", "describe (weights identity, ...)", "fit s", "score s",
                                  "model reused"]), "",
                f"- dataset `{dataset.get('name')}` (source `{dataset.get('source')}`, layout `{dataset.get('layout')}`,"
                f" fingerprint `{dataset.get('fingerprint')}`); training set {counts.get('train_real', '?')} real + "
                f"{counts.get('train_fake', '?')} fake; cap per class {self.first('cap_per_class') or 'none'}",
                f"- preprocessing `{(self.first('preprocess') or {}).get('key')}`; test perturbations "
                f"{', '.join(f'`{p}`' for p in self.perturbations)}",
                "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
                f"- dfzoo commit(s): {', '.join(f'`{c}`' for c in commits)}", ""]

    # -- plots ---------------------------------------------------------------------------------------------
    def plots(self, folder: Path) -> list[Path]:
        from . import plots
        if not self.labels:
            return []
        grid = np.array([[self.metric(label, g, "auc") for g in self.generators] for label in self.labels])
        means = [self.means[(label, self.clean)]["auc"] for label in self.labels]
        written = [plots.auc_heatmap(f"{self.name}: ROC-AUC ({_condition(self.clean)})", self.labels,
                                     self.generators, grid, folder / f"{_slug(self.name)}-auc.png", self.seen, means)]
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
            written.append(plots.roc_grid(f"{self.name}: ROC curves ({_condition(self.clean)})", curves,
                                          folder / f"{_slug(self.name)}-roc.png", self.seen))
        return written

    def summary(self, intervals: bool = True) -> list[dict[str, Any]]:
        """Per detector: mean metrics per perturbation, intervals of the clean means, row counts by status."""
        out = []
        for label in [*self.labels, *(l for l in OrderedDict.fromkeys(r["label"] for r in self.rows)
                                      if l not in self.labels)]:
            rows = [r for r in self.rows if r["label"] == label]
            entry = {"label": label, "detector": rows[0].get("detector"),
                     "status": {s: sum(r.get("status") == s for r in rows) for s in (OK, ERROR, SKIPPED)}}
            if label in self.labels:
                entry["mean"] = {p: self.means[(label, p)] for p in self.perturbations}
                if intervals:
                    entry["mean_ci"] = self.mean_ci(label)
            out.append(entry)
        return out


# -- documents -------------------------------------------------------------------------------------------
def _document(title: str, store_dir: str | Path, rows: list[dict[str, Any]], boards: list[ProtocolBoard]) -> str:
    as_of = max((str(r.get("finished_at") or "") for r in rows), default="") or "no results"
    labels = {r.get("label") for r in rows}
    lines = [f"# {title}", "",
             f"{len(boards)} protocol(s), {len(labels)} detector configuration(s), {len(rows)} result rows; "
             f"latest result {as_of}. Regenerate with `dfzoo leaderboard --store {_relative(store_dir)} --out "
             f"DIR`; every row is in `results.csv` / `results.json`.", ""]
    if boards:
        lines += ["Protocols: " + ", ".join(f"[{b.name}](#{_anchor(b.name)})" for b in boards), ""]
    lines += ["How to read: higher is better except EER. ROC-AUC and AP need no threshold; accuracies use the "
              "detector's threshold (0.5 unless its `describe()` gives one; a score at or above it means fake). "
              "\"best-thr acc\" picks the best threshold on the test set itself (an oracle bound). Intervals are "
              "95% stratified bootstrap percentiles; the mean's interval resamples every test set together. "
              "The best value per column is in bold.", ""]
    for board in boards:
        lines += [board.markdown(), ""]
    return "\n".join(lines).rstrip() + "\n"


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    columns = ["protocol", "label", "detector", "test_generator", "test_family", "seen_in_training",
               "test_perturbation", "status", *CSV_METRICS, "auc_ci_low", "auc_ci_high", "ap_ci_low", "ap_ci_high",
               "threshold", "threshold_policy", "params_hash", "dataset", "dataset_fingerprint", "preprocess",
               "train_perturbation", "train_generators", "seed", "commit", "fit_seconds", "score_seconds",
               "finished_at", "reason", "row_id"]
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
            record.update({"dataset": (row.get("dataset") or {}).get("name"),
                           "dataset_fingerprint": (row.get("dataset") or {}).get("fingerprint"),
                           "preprocess": (row.get("preprocess") or {}).get("key"),
                           "train_generators": ";".join(row.get("train_generators") or []),
                           "reason": row.get("reason") or (f"{error.get('type')}: {_one_line(error.get('message', ''))}"
                                                           if error else "")})
            writer.writerow(record)
    return path


def _write_json(path: Path, rows: list[dict[str, Any]], boards: list[ProtocolBoard]) -> Path:
    document = {"protocols": {b.name: b.summary() for b in boards}, "rows": rows}
    path.write_text(json.dumps(clean_json(document), indent=1, sort_keys=True) + "\n")
    return path


def summary_table(store_dir: str | Path, protocols: Sequence[str] | None = None) -> str:
    """A short plain-text table (for the end of ``dfzoo run``): mean clean AUC/AP/acc per detector."""
    store = ResultStore(store_dir)
    rows = latest_rows(store.rows())
    table = []
    for name in sorted({str(r.get("protocol")) for r in rows}):
        if protocols is not None and name not in protocols:
            continue
        board = ProtocolBoard(name, [r for r in rows if r.get("protocol") == name], store)
        for entry in board.summary(intervals=False):
            mean = entry.get("mean", {}).get(board.clean, {})
            status = entry["status"]
            table.append([name, entry["label"], _fmt(mean.get("auc")), _fmt(mean.get("ap")), _fmt(mean.get("acc")),
                          ", ".join(f"{n} {s}" for s, n in status.items() if n)])
    return _tabulate(table, ["protocol", "detector", "mean AUC", "mean AP", "mean acc", "rows"], fmt="simple")


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
    return (isinstance(value, list) and len(value) > 0 and all(isinstance(r, list) and r for r in value)
            and len({len(r) for r in value}) == 1
            and all(isinstance(v, (int, float)) or v is None for r in value for v in r))


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


def _bold_best(table: list[list[Any]], columns: Iterable[int]) -> None:
    """Format float cells, the best (highest) of each column in bold; NaN as a dash."""
    for column in columns:
        values = [row[column] for row in table]
        finite = [v for v in values if isinstance(v, float) and math.isfinite(v)]
        best = max(finite) if len(finite) > 1 else None
        for row in table:
            value = row[column]
            row[column] = f"**{_fmt(value)}**" if best is not None and value == best else _fmt(value)


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
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) else math.nan


def _condition(perturbation: str) -> str:
    return "clean" if perturbation == CLEAN else perturbation


def _describe(describe: Mapping[str, Any]) -> str:
    flat, _ = flatten_extra(describe)
    return "; ".join(f"{k}={_cell(v)}" for k, v in flat.items())


def _where(cells: list[str], total: int) -> str:
    return "all test sets" if len(cells) >= total else ", ".join(cells)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[:limit - 1] + "…"


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
