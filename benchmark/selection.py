"""Which result rows a leaderboard or report shows, and the names it shows them under.

- One configuration per protocol: rows are keyed by the protocol's content hash (settings + dataset
  fingerprint), training generators, detector parameters and test condition (:func:`store.latest_rows`), and
  for each protocol name only the configuration with the newest row is shown; older configurations are
  counted, never mixed in.
- Accuracies are shown only under a meaningful threshold policy (``metrics.MEANINGFUL_THRESHOLD_POLICIES``).
- A detector configuration is shown by its name plus the parameters that tell it apart from the other
  configurations of the same detector (:func:`short_labels`), not by its whole parameter string.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dfzoo.data.families import REAL_FAMILY

from . import metrics
from .store import latest_rows

UNKNOWN_FAMILY = "unknown"


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


def family_label(family: Any) -> str:
    """How a test generator's family is shown: "unknown" when none is known (a generator's fakes are never
    of family "real"; rows written before that was fixed may say so)."""
    return UNKNOWN_FAMILY if not family or family == REAL_FAMILY else str(family)


def threshold_is_meaningful(row: Mapping[str, Any]) -> bool:
    """Whether a row's threshold policy makes its accuracies worth showing."""
    return row.get("threshold_policy", metrics.FIXED_POLICY) in metrics.MEANINGFUL_THRESHOLD_POLICIES


def shown_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's metrics as the leaderboard may show them: threshold metrics blanked under a meaningless policy."""
    values = dict(row.get("metrics") or {})
    if not threshold_is_meaningful(row):
        values.update({key: math.nan for key in metrics.THRESHOLD_METRICS})
    return values


def short_labels(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """A readable name for each detector label of ``rows``: the detector's name, plus ``(key=value, ...)`` for
    the parameters whose values differ between that detector's configurations.

    A label whose rows record no parameters keeps its full text, and so do labels whose short names would
    collide, so the mapping is always one-to-one.
    """
    params: dict[str, dict[str, Any]] = {}
    detector: dict[str, str] = {}
    for row in rows:
        label = str(row.get("label"))
        detector.setdefault(label, str(row.get("detector") or label.split("[")[0]))
        if isinstance(row.get("params"), Mapping):
            params.setdefault(label, dict(row["params"]))
    by_detector: dict[str, list[str]] = {}
    for label, name in detector.items():
        by_detector.setdefault(name, []).append(label)
    short: dict[str, str] = {}
    for name, labels in by_detector.items():
        keys = sorted({key for label in labels for key in params.get(label, {})})
        differing = [key for key in keys if len({_key(params.get(label, {}).get(key)) for label in labels}) > 1]
        for label in labels:
            if label not in params:
                short[label] = label
                continue
            shown = ", ".join(f"{key}={_value(params[label].get(key))}" for key in differing)
            short[label] = f"{name} ({shown})" if shown else name
    counts: dict[str, int] = {}
    for text in short.values():
        counts[text] = counts.get(text, 0) + 1
    return {label: text if counts[text] == 1 else label for label, text in short.items()}


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(str(v) for v in value)
    return "–" if value is None else '""' if value == "" else str(value)


__all__ = [
    "UNKNOWN_FAMILY",
    "OlderConfiguration",
    "current_configurations",
    "family_label",
    "short_labels",
    "shown_metrics",
    "threshold_is_meaningful",
]
