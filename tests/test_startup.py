"""Start-up stays light: `import dfzoo`, building the registry (every built-in plugin registered), `dfzoo --help`
and `dfzoo list` import no torch or other heavy library (plugins import them inside factories). Checked in a
fresh interpreter, since this test process has imported them long ago."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "torch",
    "torchvision",
    "timm",
    "open_clip",
    "diffusers",
    "transformers",
    "sklearn",
    "scipy",
    "skimage",
    "matplotlib",
    "onnx",
    "onnxruntime",
    "lpips",
    "pytorch_grad_cam",
    "skops",
)

SCRIPT = """
import contextlib, io, json, sys
import dfzoo
dfzoo.current_registry()
argv = json.loads(sys.argv[1])
if argv is not None:
    from dfzoo.cli import main
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
print(json.dumps(sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)))
"""


def heavy_modules_after(argv: list[str] | None, env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(argv), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def child_env(isolated_cache, tmp_path) -> dict[str, str]:
    import os

    return {**os.environ, "DFZOO_DISABLE_PLUGIN_AUTOLOAD": "1", "TORCH_HOME": str(tmp_path / "torch")}


@pytest.mark.parametrize("argv", [None, ["--help"], ["list"], ["info", "clip_probe"], ["list", "--offline"]])
def test_start_up_imports_no_heavy_library(child_env, argv):
    assert heavy_modules_after(argv, child_env) == []


def test_torch_hub_files_are_found_without_importing_torch(tmp_path, monkeypatch):
    """Where torch.hub keeps checkpoints, by torch's own rule, so weights listings need not import torch."""
    import torch

    from dfzoo.weights import torch_hub_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    checkpoint = tmp_path / "home" / "hub" / "checkpoints" / "w.pth"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"x")
    assert torch.hub.get_dir() == str(tmp_path / "home" / "hub")
    assert torch_hub_file("w.pth") == checkpoint
    monkeypatch.delitem(sys.modules, "torch")  # the rule used before torch is imported
    assert torch_hub_file("w.pth") == checkpoint and torch_hub_file("other.pth") is None
