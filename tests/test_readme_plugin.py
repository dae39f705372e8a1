"""The README's plugin example, run as a user would: through the contract kit and through the harness
under ``jpeg:quality=10`` (its scores must move: the harness, not the plugin, applies perturbations)."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np

from dfzoo.benchmark.harness import run_benchmark
from dfzoo.benchmark.protocol import parse_protocol
from dfzoo.benchmark.store import ResultStore
from dfzoo.manager import get_plugin_manager
from dfzoo.registry import Registry, use_registry
from dfzoo.testing import check_detector, write_folder_dataset

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_plugin() -> types.ModuleType:
    """The ``# mypkg/plugin.py`` code block of the README, imported as a module."""
    block = re.search(r"```python\n# mypkg/plugin.py\n(.*?)```", README.read_text(), re.S)
    assert block, "README has no '# mypkg/plugin.py' example"
    module = types.ModuleType("mypkg_plugin")
    exec(compile(block.group(1), "README.md:mypkg/plugin.py", "exec"), module.__dict__)
    return module


def test_readme_plugin_keeps_the_contract(tmp_path):
    registry = Registry(get_plugin_manager(autoload=False, extra_plugins=(readme_plugin(),)))
    assert check_detector("mean_brightness", tmp_path, registry=registry).ok


def test_readme_plugin_sees_the_harness_perturbation(tmp_path):
    registry = Registry(get_plugin_manager(autoload=False, extra_plugins=(readme_plugin(),)))
    data = write_folder_dataset(tmp_path / "data")
    (data / "gan_b" / "1_fake" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    protocol = parse_protocol(
        {
            "name": "readme",
            "dataset": str(data),
            "train_generators": ["gan_a"],
            "test_generators": "all",
            "bootstrap": 20,
            "perturbations": ["none", "jpeg:quality=10"],
            "detectors": [{"name": "mean_brightness"}],
        }
    )
    with use_registry(registry):
        summary = run_benchmark(protocol, tmp_path / "store", registry=registry, progress=False)
    assert summary.rows_ok == 4 and summary.rows_error == 0  # one corrupt image spoils no row
    store = ResultStore(tmp_path / "store")
    scores = {(r["test_generator"], r["test_perturbation"]): store.load_scores(r["row_id"])[1] for r in summary.rows}
    for generator in ("gan_a", "gan_b"):
        clean, jpeg = scores[(generator, "none")], scores[(generator, "jpeg:quality=10")]
        finite = np.isfinite(clean)
        assert not np.array_equal(clean[finite], jpeg[finite])
    corrupt_row = next(r for r in summary.rows if r["test_generator"] == "gan_b" and r["test_perturbation"] == "none")
    assert corrupt_row["n_skipped"] == 1 and list(corrupt_row["skipped_reasons"]) != ["detector returned NaN"]
