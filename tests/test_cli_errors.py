"""Loud, short failure: every command error is one `dfzoo <cmd>: error:` line and exit 2, before any work
where it can be; `dfzoo run` exits 1 when rows error (0 with --keep-going); broken plugins are skipped."""

from __future__ import annotations

import errno
import sys
import types
from pathlib import Path

import pytest
import torch

import dfzoo
import dfzoo.benchmark.harness as harness
import dfzoo.registry
from dfzoo.cli import error_line, main, writable_dir, writable_file
from dfzoo.detector import Detector
from dfzoo.registry import use_registry
from tests.kit import HFEnergy, fit_args, install_fake_distribution, make_registry, write_tiny_dataset


@pytest.fixture
def no_dataset_opened(monkeypatch: pytest.MonkeyPatch) -> list:
    """Records every dataset the harness or a command opens (a test asserts the list stays empty)."""
    opened: list = []
    real_harness, real_api = harness.load_dataset, dfzoo.load_dataset
    monkeypatch.setattr(harness, "load_dataset", lambda *a, **k: opened.append(a) or real_harness(*a, **k))
    monkeypatch.setattr(dfzoo, "load_dataset", lambda *a, **k: opened.append(a) or real_api(*a, **k))
    return opened


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if ": error: " in line]


def run_args(tmp_path: Path, dataset: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--dataset",
        str(dataset),
        "--layout",
        "forensynths",
        "--train",
        "gan_a",
        "--store",
        str(tmp_path / "store"),
        "--no-leaderboard",
        "--quiet",
        "--bootstrap",
        "0",
        *extra,
    ]


# -- up-front checks of `dfzoo run` ----------------------------------------------------------------------
def test_run_with_an_invalid_param_value_fails_before_opening_any_dataset(
    registry, folder_dataset, tmp_path, capsys, no_dataset_opened
):
    code = main(
        run_args(
            tmp_path, folder_dataset, "--detector", "probe", "--param", "classifier=svn", "--param", "backbone=tiny_cnn"
        )
    )
    assert code == 2 and no_dataset_opened == []
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith("dfzoo run: error: ") and "unknown classifier 'svn'" in line and "did you mean svm" in line
    assert not (tmp_path / "store" / "results.jsonl").exists()


@pytest.mark.parametrize(
    "device, message",
    [
        ("gpu", "unknown device 'gpu'"),
        pytest.param(
            "cuda",
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
        ),
    ],
)
def test_run_with_a_bad_device_fails_before_any_work(
    registry, folder_dataset, tmp_path, capsys, no_dataset_opened, device, message
):
    code = main(
        run_args(
            tmp_path, folder_dataset, "--detector", "nn_cosine", "--param", "backbone=tiny_cnn", "--device", device
        )
    )
    assert code == 2 and no_dataset_opened == []
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith("dfzoo run: error: ") and message in line


def test_run_into_an_unwritable_store_fails_before_any_work(
    registry, folder_dataset, tmp_path, capsys, no_dataset_opened
):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    assert main(run_args(tmp_path, folder_dataset, "--store", str(blocker / "out"))) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line == f"dfzoo run: error: --store {blocker / 'out'} is not a folder ({blocker} is a file)"
    assert no_dataset_opened == []


# -- exit codes of `dfzoo run` ---------------------------------------------------------------------------
@pytest.fixture
def failing_protocol(tmp_path: Path) -> Path:
    """A protocol whose one detector raises in fit (every row an error) beside one that works."""
    folder = write_tiny_dataset(tmp_path / "tiny", reals=8, fakes=4)
    path = tmp_path / "failing.toml"
    path.write_text(f'''name = "tiny"
dataset = "tinyzoo"
dataset_params = {{ folder = "{folder.as_posix()}" }}
train_generators = ["gan_a"]
bootstrap = 0
[[detectors]]
name = "hf_energy"
[[detectors]]
name = "hf_energy"
params = {{ fail = "fit" }}
''')
    return path


@pytest.fixture
def bench_cli_registry():
    registry = make_registry()
    with use_registry(registry):
        yield registry


def test_run_exits_1_when_rows_error_and_says_where(bench_cli_registry, failing_protocol, tmp_path, capsys):
    code = main(
        ["run", "--protocol", str(failing_protocol), "--store", str(tmp_path / "s1"), "--no-leaderboard", "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "3 error row(s) from 1 detector(s)" in err
    assert "tiny / hf_energy[fail=fit]: 3 row(s); fit: RuntimeError: fit exploded on purpose" in err


def test_keep_going_exits_0_with_error_rows(bench_cli_registry, failing_protocol, tmp_path, capsys):
    code = main(
        [
            "run",
            "--protocol",
            str(failing_protocol),
            "--store",
            str(tmp_path / "s2"),
            "--no-leaderboard",
            "--quiet",
            "--keep-going",
        ]
    )
    assert code == 0 and "hf_energy[fail=fit]" in capsys.readouterr().err


# -- fit and predict -------------------------------------------------------------------------------------
def test_fit_into_an_unwritable_folder_fails_before_reading_data(
    registry, folder_dataset, tmp_path, capsys, no_dataset_opened
):
    (tmp_path / "file.txt").write_text("x")
    code = main(fit_args(folder_dataset, tmp_path / "file.txt" / "out"))
    assert code == 2 and no_dataset_opened == []
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith("dfzoo fit: error: --out ") and "is not a folder" in line


def test_fit_with_a_bad_value_or_name_fails_before_reading_data(
    registry, folder_dataset, tmp_path, capsys, no_dataset_opened
):
    assert (
        main(
            [
                "fit",
                "probe",
                "--dataset",
                str(folder_dataset),
                "--param",
                "reduction=umap",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 2
    )
    assert main(["fit", "nn_cosin", "--dataset", str(folder_dataset), "--out", str(tmp_path / "m")]) == 2
    first, second = error_lines(capsys.readouterr().err)
    assert "unknown reduction 'umap'; allowed: none, pca, ae" in first
    assert second == "dfzoo fit: error: no detector named 'nn_cosin'; did you mean nn_cosine?"
    assert no_dataset_opened == []


def test_predict_into_an_unwritable_file_fails_before_scoring(registry, folder_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Detector, "score", lambda *a: pytest.fail("scored before checking --out"))
    (tmp_path / "file.txt").write_text("x")
    assert main(["predict", "aeroblade", str(folder_dataset), "--out", str(tmp_path / "file.txt" / "s.csv")]) == 2
    assert main(["predict", "aeroblade", str(folder_dataset), "--out", str(tmp_path)]) == 2
    first, second = error_lines(capsys.readouterr().err)
    assert "is not a folder" in first and "is a folder; give a file name" in second


def test_disk_full_is_one_line_and_debug_shows_the_traceback(registry, folder_dataset, tmp_path, capsys, monkeypatch):
    def full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Detector, "save", full)
    args = fit_args(folder_dataset, tmp_path / "model")
    assert main(args) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line == f"dfzoo fit: error: No space left on device: {tmp_path / 'model'}"
    with pytest.raises(OSError, match="No space"):
        main([*args, "--debug"])
    monkeypatch.setenv("DFZOO_DEBUG", "1")
    with pytest.raises(OSError, match="No space"):
        main(args)


# -- plugins ---------------------------------------------------------------------------------------------
@pytest.fixture
def fresh_default_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """`dfzoo` builds its registry itself, as the console script does."""
    monkeypatch.setattr(dfzoo.registry, "_default", [])


def test_a_broken_third_party_plugin_leaves_every_command_working(
    fresh_default_registry, tmp_path, monkeypatch, capsys, caplog
):
    install_fake_distribution(
        tmp_path,
        "dfzoo_clash",
        """
        import dfzoo
        @dfzoo.hookimpl
        def dfzoo_detectors():
            yield "not a spec"
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "detectors"]) == 0
    assert "nn_cosine" in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("skipping plugin dfzoo_clash")


def test_a_duplicate_between_builtins_is_one_error_line(fresh_default_registry, monkeypatch, capsys):
    import dfzoo.manager as manager

    module = types.ModuleType("dfzoo_test_builtin_twin")

    @dfzoo.hookimpl
    def dfzoo_detectors():
        yield dfzoo.DetectorSpec(name="nn_cosine", summary="twin", factory=HFEnergy)

    module.dfzoo_detectors = dfzoo_detectors
    monkeypatch.setitem(sys.modules, module.__name__, module)
    builtins = manager.builtin_plugin_modules()
    monkeypatch.setattr(manager, "builtin_plugin_modules", lambda: [*builtins, module.__name__])
    monkeypatch.setenv("DFZOO_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert main(["list"]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line == (
        "dfzoo: error: detector 'nn_cosine' is offered twice: "
        "by dfzoo.plugins.detectors.univfd and by dfzoo_test_builtin_twin"
    )


# -- helpers ---------------------------------------------------------------------------------------------
def test_error_line_is_one_line_and_names_unexpected_types():
    assert error_line(ValueError("first\n  second")) == "first second"
    assert error_line(PermissionError(errno.EACCES, "Permission denied", "/x")) == "Permission denied: /x"
    assert error_line(TypeError("bad")) == "TypeError: bad (--debug shows the traceback)"


def test_writable_checks_create_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    assert writable_dir(target, "--out") == target and not (tmp_path / "a").exists()
    assert writable_file(tmp_path / "new.csv", "--out") and not (tmp_path / "new.csv").exists()
    assert list(tmp_path.iterdir()) == []
