"""What went wrong and where each number came from: failed, skipped and partly unscored rows of a protocol,
and per detector its parameters' hash, ``describe()`` (weights identity, ...), timings, and the dataset,
versions and commits of the rows. Rendered by the Markdown page and the HTML report alike."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from . import metrics
from .board import ProtocolBoard
from .store import OK
from .text import DASH, describe_text, fmt_value, one_line


def problems(board: ProtocolBoard) -> OrderedDict[tuple[Any, ...], list[str]]:
    """``(label, status, reason) -> [generator/perturbation, ...]`` for every failed, skipped or partly
    unscored row."""
    seen: OrderedDict[tuple[Any, ...], list[str]] = OrderedDict()
    for row in board.rows:
        if row.get("status") == OK:
            if row.get("n_skipped"):
                reasons = ", ".join(f"{count} {reason}" for reason, count in (row.get("skipped_reasons") or {}).items())
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
            or f"{error.get('type', '?')} in {error.get('stage', '?')}: {one_line(error.get('message', ''))}"
        )
        key = (row.get("label"), row.get("status"), reason)
        seen.setdefault(key, []).append(f"{row.get('test_generator')}/{row.get('test_perturbation')}")
    return seen


def provenance_rows(board: ProtocolBoard) -> list[list[str]]:
    """Per detector label: params hash, describe() (weights identity, ...), fit and score seconds, reuse."""
    table = []
    for label in list(OrderedDict.fromkeys(r["label"] for r in board.rows)):
        rows = [r for r in board.rows if r["label"] == label]
        row = next((r for r in rows if r.get("status") == OK), rows[0])
        table.append(
            [
                label,
                str(row.get("params_hash", "")),
                describe_text(row.get("describe") or {}) or DASH,
                fmt_value(max(r.get("fit_seconds") or 0 for r in rows), 1),
                fmt_value(sum(r.get("score_seconds") or 0 for r in rows), 1),
                "yes" if any(r.get("model_reused") for r in rows) else "no",
            ]
        )
    return table


PROVENANCE_HEADERS = ["Detector", "params hash", "describe (weights identity, ...)", "fit s", "score s", "model reused"]


def provenance_notes(board: ProtocolBoard) -> list[str]:
    """Dataset, preprocessing, versions and commits of a protocol's rows, one line each."""
    counts = board.first("counts", {})
    versions = board.first("versions", {})
    commits = sorted({str(r.get("commit", "unknown"))[:12] for r in board.rows})
    dataset = board.first("dataset", {})
    return [
        f"dataset `{dataset.get('name')}` (source `{dataset.get('source')}`, layout `{dataset.get('layout')}`,"
        f" fingerprint `{dataset.get('fingerprint')}`); training set {counts.get('train_real', '?')} real + "
        f"{counts.get('train_fake', '?')} fake; cap per class {board.first('cap_per_class') or 'none'}",
        f"preprocessing `{(board.first('preprocess') or {}).get('key')}`; test perturbations "
        f"{', '.join(f'`{p}`' for p in board.perturbations)}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"dfzoo commit(s): {', '.join(f'`{c}`' for c in commits)}",
    ]


def threshold_text(row: Mapping[str, Any]) -> str:
    """A row's threshold and how it was chosen."""
    policy = row.get("threshold_policy", metrics.FIXED_POLICY)
    if policy == metrics.TRAIN_REAL_QUANTILE_POLICY and row.get("threshold_fpr") is not None:
        policy = f"{policy}, FPR {fmt_value(row.get('threshold_fpr'), 2)} on training reals"
    return f"{fmt_value(row.get('threshold'))} ({policy})"


__all__ = ["PROVENANCE_HEADERS", "problems", "provenance_notes", "provenance_rows", "threshold_text"]
