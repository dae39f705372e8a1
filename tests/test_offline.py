"""Offline is detected, not waited for: one short check of the hub, then downloads are off for the process
(HF_HUB_OFFLINE set for the libraries too) and a missing checkpoint fails at once with the usual message."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from dfzoo import WeightsSpec
from dfzoo import weights as weights_module
from dfzoo.backbones import hf_cached_file, hf_download
from dfzoo.cli import main
from dfzoo.weights import DOWNLOAD, WeightsNotFound, downloads_off_reason, resolve


def closed_port() -> int:
    """A local port nobody listens on: connecting to it is refused at once (no network needed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def online_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No offline variable set, the per-process check forgotten, huggingface_hub's offline flag restored."""
    for var in ("DFZOO_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(weights_module, "_went_offline", [])
    weights_module._connect_failure.cache_clear()
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
    yield monkeypatch
    weights_module._connect_failure.cache_clear()


@pytest.fixture
def hub_unreachable(online_env: pytest.MonkeyPatch) -> str:
    """The hub endpoint is a local port that refuses connections."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    online_env.setenv("HF_ENDPOINT", endpoint)
    return endpoint


def downloadable(tmp_path: Path, calls: list[str]) -> WeightsSpec:
    def download() -> Path:
        calls.append("download")
        target = tmp_path / "downloaded.pt"
        target.write_bytes(b"x")
        return target

    return WeightsSpec(name="toy", summary="toy weights", library="file", files=("toy.pt",), download=download)


def test_unreachable_hub_fails_at_once_without_a_download_attempt(tmp_path, hub_unreachable, monkeypatch):
    calls: list[str] = []
    connects: list[tuple] = []
    real_connect = socket.create_connection
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connects.append(a) or real_connect(*a, **k))
    with pytest.raises(WeightsNotFound) as error:
        resolve(downloadable(tmp_path, calls))
    message = str(error.value)
    assert "weights 'toy'" in message and "looked for:" in message  # the existing clear message
    assert "downloads are off" in message and "cannot be reached" in message
    assert calls == []
    # the libraries are told too, and the check is not repeated in this process
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(WeightsNotFound):
        resolve(downloadable(tmp_path, calls))
    assert calls == [] and len(connects) == 1
    assert "cannot be reached" in downloads_off_reason()


def test_an_offline_variable_is_respected_without_any_connection(tmp_path, online_env, monkeypatch):
    online_env.setenv("DFZOO_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("no connection expected"))
    calls: list[str] = []
    with pytest.raises(WeightsNotFound, match="DFZOO_OFFLINE=1 is set"):
        resolve(downloadable(tmp_path, calls))
    assert calls == []


def test_a_reachable_hub_lets_the_download_run(tmp_path, online_env):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        online_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        calls: list[str] = []
        found = resolve(downloadable(tmp_path, calls))
    assert found.source == DOWNLOAD and calls == ["download"]
    assert downloads_off_reason() == ""


def test_hf_download_does_not_call_the_hub_when_it_is_unreachable(hub_unreachable, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("no download expected"))
    with pytest.raises(FileNotFoundError, match="cannot be reached"):
        hf_download("timm/resnet50.a1_in1k")


def test_hf_cached_file_names_the_repo_only_when_the_cache_holds_candidates(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    asked: list[int] = []

    def repo() -> str:
        asked.append(1)
        return "org/model"

    assert hf_cached_file(repo) is None and asked == []  # an empty cache: the costly lookup is skipped
    assert hf_cached_file("org/model") is None


def test_weights_command_says_why_downloads_are_off(registry, hub_unreachable, capsys):
    assert main(["weights", "resnet50_in1k"]) == 1
    out = capsys.readouterr()
    assert "downloads: off: the model hub 127.0.0.1" in out.out
    assert "weights 'resnet50_in1k'" in out.err
