"""Offline-first weight resolution.

Order: an explicit path, then ``$DFZOO_WEIGHTS_DIR/<name>/``, then the library's own cache or a file shipped
in an installed package (``WeightsSpec.find_local``), then a download where the network is allowed. Missing
weights raise :class:`WeightsNotFound` naming the path we looked in and how to fetch them: a pretrained
model is never silently replaced by a random one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .paths import cache_dir, offline, weights_dir
from .spec import WeightsSpec

EXPLICIT, WEIGHTS_DIR, LOCAL, DOWNLOAD = "explicit", "weights_dir", "local", "download"


class WeightsNotFound(FileNotFoundError):
    """Weights could not be resolved; the message says where they were expected and how to get them."""


@dataclass(frozen=True)
class ResolvedWeights:
    """Where weights were found and by which step; ``sha256`` identifies them in result rows."""

    name: str
    path: Path
    source: str

    @property
    def sha256(self) -> str:
        return path_sha256(self.path)

    @property
    def identity(self) -> str:
        return f"{self.name}@sha256:{self.sha256[:16]}"


def resolve(
    spec: WeightsSpec, explicit: str | Path | None = None, *, allow_download: bool | None = None
) -> ResolvedWeights:
    """Walk the resolution chain for ``spec``; see the module docstring."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise WeightsNotFound(f"weights {spec.name!r}: the given path {path} does not exist")
        return ResolvedWeights(spec.name, path, EXPLICIT)
    folder = weights_dir() / spec.name
    for candidate in [folder / f for f in spec.files] + ([folder] if not spec.files else []):
        if candidate.exists() and (candidate.is_file() or any(candidate.iterdir())):
            return ResolvedWeights(spec.name, candidate, WEIGHTS_DIR)
    if spec.find_local is not None:
        try:
            local = spec.find_local()
        except Exception:  # a library cache probe must never crash resolution
            local = None
        if local is not None and Path(local).exists():
            return ResolvedWeights(spec.name, Path(local), LOCAL)
    if allow_download is None:
        allow_download = not offline()
    if allow_download and spec.download is not None:
        try:
            return ResolvedWeights(spec.name, Path(spec.download()), DOWNLOAD)
        except Exception as error:
            raise WeightsNotFound(
                _missing_message(spec, folder, f"download failed: {type(error).__name__}: {error}")
            ) from error
    raise WeightsNotFound(_missing_message(spec, folder, "downloads are off" if not allow_download else ""))


def can_resolve(spec: WeightsSpec) -> bool:
    """Whether ``spec`` resolves on this machine without any download."""
    try:
        resolve(spec, allow_download=False)
        return True
    except WeightsNotFound:
        return False


def _missing_message(spec: WeightsSpec, folder: Path, detail: str) -> str:
    expected = folder / spec.files[0] if spec.files else folder
    lines = [
        f"weights {spec.name!r} ({spec.summary}) not found.",
        f"  looked for: {expected}  (set DFZOO_WEIGHTS_DIR to move {weights_dir()})",
    ]
    if spec.source:
        lines.append(f"  source: {spec.library} {spec.source}")
    if spec.fetch_hint:
        lines.append(f"  to get them: {spec.fetch_hint}")
    if detail:
        lines.append(f"  ({detail})")
    return "\n".join(lines)


def path_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents); memoised on disk by mtime."""
    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stamp = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    memo_file = cache_dir() / "weights-sha256.json"
    key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if key in memo:
        return memo[key]
    digest = hashlib.sha256()
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    value = digest.hexdigest()
    memo[key] = value
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, memo_file)
    except OSError:
        pass
    return value
