"""The folders are the layers: core/ and benchmark/ never import a plugin, core/ never imports the harness,
and every built-in plugin is listed explicitly (a module is registered because it is named, not found)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dfzoo.manager import BUILTIN_PLUGINS, blocked_plugin_names, builtin_aliases, get_plugin_manager

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports stay inside their own folder)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [("core", ("dfzoo.plugins", "dfzoo.benchmark")), ("benchmark", ("dfzoo.plugins",))],
)
def test_lower_layers_import_no_upper_layer(folder: str, forbidden: tuple[str, ...]) -> None:
    offending = sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / folder).rglob("*.py")
        for name in imported_modules(path)
        if name.startswith(forbidden)
    )
    assert not offending, "\n".join(offending)


def test_every_plugin_module_is_listed_and_every_listed_one_exists() -> None:
    on_disk = {
        "dfzoo.plugins." + ".".join(path.relative_to(ROOT / "plugins").with_suffix("").parts)
        for path in (ROOT / "plugins").glob("*/*.py")
        if not path.name.startswith("_")
    }
    assert set(BUILTIN_PLUGINS) == on_disk
    assert all(
        name.split(".")[2] in {"detectors", "backbones", "datasets", "perturbations", "commands"}
        for name in BUILTIN_PLUGINS
    )


def test_plugins_can_be_blocked_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFZOO_DISABLE_PLUGINS", " dire, detectors.aeroblade ,dfzoo.plugins.commands.grid")
    assert blocked_plugin_names() == {"dire", "detectors.aeroblade", "dfzoo.plugins.commands.grid"}
    assert builtin_aliases("dfzoo.plugins.detectors.dire") == {"dfzoo.plugins.detectors.dire", "detectors.dire", "dire"}
    pm = get_plugin_manager(autoload=False)
    registered = {pm.get_name(plugin) for plugin in pm.get_plugins()}
    for name in ("dfzoo.plugins.detectors.dire", "dfzoo.plugins.detectors.aeroblade", "dfzoo.plugins.commands.grid"):
        assert name not in registered and pm.is_blocked(name)
    assert "dfzoo.plugins.detectors.probe" in registered
    detectors = {spec.name for specs in pm.hook.dfzoo_detectors() for spec in specs}
    assert "dire" not in detectors and "aeroblade" not in detectors and "probe" in detectors


def test_test_modules_never_import_each_other() -> None:
    """Shared test helpers live in tests/kit.py, tests/synthetic.py, tests/tiny_models.py or conftest.py."""
    offending = sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / "tests").rglob("test_*.py")
        for name in imported_modules(path)
        if name.startswith(("tests.test_", "tests.benchmarks.test_", "tests.conftest"))
    )
    assert not offending, "\n".join(offending)
