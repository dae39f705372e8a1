"""Offline-first weight resolution.

Order: an explicit path, then ``$DFZOO_WEIGHTS_DIR/<name>/``, then the library's own cache or a file shipped
in an installed package (``WeightsSpec.find_local``), then a download where the network is allowed. Missing
weights raise :class:`WeightsNotFound` naming the path we looked in and how to fetch them: a pretrained
model is never silently replaced by a random one.

Offline is detected, not waited for: before the first download attempt of a process, one short connection
check of the model hub (huggingface.co, or ``$HF_ENDPOINT``) stands for the network. When it fails, downloads
are off for the rest of the process and ``HF_HUB_OFFLINE`` is set, so huggingface_hub, timm, open_clip and
diffusers fail at once instead of retrying for minutes; the error says why (:func:`downloads_off_reason`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .paths import cache_dir, offline_variable, weights_dir
from .spec import WeightsSpec

EXPLICIT, WEIGHTS_DIR, LOCAL, DOWNLOAD = "explicit", "weights_dir", "local", "download"
DEFAULT_HUB = "https://huggingface.co"
HUB_CHECK_SECONDS = 2.0  # the one wait a machine without network pays, once per process
_went_offline: list[str] = []  # why this process turned downloads off (the hub did not answer)


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
    if spec.download is None or allow_download is False:  # not downloadable, or not asked to
        raise WeightsNotFound(_missing_message(spec, folder, ""))
    off = "" if allow_download else downloads_off_reason()  # asked for explicitly: `dfzoo weights NAME --fetch`
    if off:
        raise WeightsNotFound(_missing_message(spec, folder, f"downloads are off: {off}"))
    try:
        return ResolvedWeights(spec.name, Path(spec.download()), DOWNLOAD)
    except Exception as error:
        raise WeightsNotFound(
            _missing_message(spec, folder, f"download failed: {type(error).__name__}: {error}")
        ) from error


def can_resolve(spec: WeightsSpec) -> bool:
    """Whether ``spec`` resolves on this machine without any download."""
    try:
        resolve(spec, allow_download=False)
        return True
    except WeightsNotFound:
        return False


def torch_hub_file(filename: str) -> Path | None:
    """A checkpoint already in torch.hub's ``checkpoints/`` folder (never downloading). Found without importing
    torch when it is not loaded yet (torch's own rule: ``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``,
    else ``~/.cache/torch/hub``), so listing weights stays fast."""
    if "torch" in sys.modules:  # honours torch.hub.set_dir() too
        hub = Path(sys.modules["torch"].hub.get_dir())
    else:
        home = os.environ.get("TORCH_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "torch"
        )
        hub = Path(home).expanduser() / "hub"
    candidate = hub / "checkpoints" / filename
    return candidate if candidate.is_file() else None


def downloads_off_reason() -> str:
    """Why weights are not downloaded in this process, or ``""`` when they may be: an offline variable
    (``DFZOO_OFFLINE``, ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``), or a hub that did not answer."""
    if _went_offline:
        return _went_offline[0]
    variable = offline_variable()
    if variable:
        return f"{variable}={os.environ[variable]} is set"
    return hub_unreachable_reason()


def hub_unreachable_reason() -> str:
    """``""`` when the model hub accepts a connection within :data:`HUB_CHECK_SECONDS`, else why not. Checked
    once per process; an unreachable hub also turns huggingface_hub's offline mode on (:func:`go_offline`)."""
    if _went_offline:
        return _went_offline[0]
    host, port = hub_address()
    reason = _connect_failure(host, port, HUB_CHECK_SECONDS)
    if reason:
        go_offline(reason)
    return reason


def hub_address() -> tuple[str, int]:
    """Host and port of the model hub: ``$HF_ENDPOINT`` (huggingface_hub's own setting), else huggingface.co."""
    url = urlsplit(os.environ.get("HF_ENDPOINT") or DEFAULT_HUB)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


@functools.cache
def _connect_failure(host: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ""
    except OSError as error:
        why = error.strerror or str(error) or type(error).__name__
        return f"the model hub {host}:{port} cannot be reached ({why}; checked with a {timeout:g} s connection)"


def go_offline(reason: str) -> None:
    """Turn downloads off for the rest of the process: dfzoo's own and those libraries make by themselves
    (``HF_HUB_OFFLINE=1``, also in an already imported huggingface_hub), so nothing waits on retries."""
    _went_offline[:] = [reason]
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        vars(constants)["HF_HUB_OFFLINE"] = True  # read at call time by huggingface_hub's is_offline_mode()


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
