"""Nothing that dfzoo loads can run code: saved detectors, training checkpoints and score sidecars refuse
pickles, object arrays and untrusted types before building any of them.

Every payload here creates a marker file when it is unpickled or built; each test first shows that its payload
is live (it does create the marker when loaded unsafely), then that dfzoo refuses it and the marker never appears.
"""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import dfzoo
from dfzoo.detector import FORMAT_VERSION, META_FILE, RunContext
from dfzoo.safeio import UnsafeFileError, load_npz, torch_load
from dfzoo.training import BEST_FILE, CHECKPOINT_FILE, Checkpointer
from tests.synthetic import labelled_samples

ROOT = Path(__file__).resolve().parents[1]


class TouchOnUnpickle:
    """Unpickling this creates ``marker`` (through pathlib only: no shell, no os.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (Path(self.marker),)


class TouchOnBuild:
    """Building this from saved state (``__setstate__``, as skops does for an object it trusts) creates a marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).touch()
        self.__dict__.update(state)


def live_pickle(marker: Path) -> bytes:
    """A pickle that touches ``marker`` when loaded; checked to really do so on a twin marker."""
    twin = marker.with_name(marker.name + ".twin")
    pickle.loads(pickle.dumps(TouchOnUnpickle(twin)))
    assert twin.exists(), "the payload must be live for the test to mean anything"
    twin.unlink()
    return pickle.dumps(TouchOnUnpickle(marker), protocol=2)  # torch.load's own protocol


@pytest.fixture
def saved_probe(registry, folder_dataset, tmp_path) -> Path:
    samples = labelled_samples(folder_dataset)
    detector = (
        dfzoo.load_detector("probe", backbone="tiny_cnn", classifier="logreg")
        .setup(RunContext(progress=False))
        .fit(samples)
    )
    return detector.save(tmp_path / "probe")


# -- saved detectors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["probe.joblib", "probe.skops", "extra/state.bin"])
def test_a_pickle_in_a_saved_model_folder_is_refused_and_runs_no_code(where, saved_probe, tmp_path):
    """Where the old format kept its pickle, in place of the skops file, or under an innocent name below."""
    marker = tmp_path / "pwned"
    target = saved_probe / where
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(live_pickle(marker))
    with pytest.raises(UnsafeFileError, match=rf"{where}.* a pickle, which can run code.*re-fit"):
        dfzoo.load_fitted(saved_probe)
    assert not marker.exists()


def test_a_joblib_file_is_refused_by_name(saved_probe, tmp_path):
    import joblib

    marker = tmp_path / "pwned"
    joblib.dump(TouchOnUnpickle(marker), saved_probe / "probe.joblib", compress=3)  # compressed: no pickle header
    with pytest.raises(UnsafeFileError, match=r"probe\.joblib is a pickle"):
        dfzoo.load_fitted(saved_probe)
    assert not marker.exists()


def test_the_probe_loader_itself_refuses_a_pickle_posing_as_its_skops_file(saved_probe, tmp_path):
    """Behind the folder check, the skops loader refuses anything that is not a skops file."""
    marker = tmp_path / "pwned"
    (saved_probe / "probe.skops").write_bytes(live_pickle(marker))
    detector = dfzoo.load_detector("probe", backbone="tiny_cnn", classifier="logreg")
    with pytest.raises(UnsafeFileError, match="not a skops file"):
        detector._load_state(saved_probe)
    assert not marker.exists()


def test_a_skops_file_with_an_untrusted_type_is_refused_before_it_is_built(saved_probe, tmp_path):
    import skops.io

    marker = tmp_path / "pwned"
    skops.io.dump({"classifier.model": TouchOnBuild(marker), "scaler.model": None}, saved_probe / "probe.skops")
    twin = tmp_path / "twin.skops"
    skops.io.dump(TouchOnBuild(marker), twin)
    skops.io.load(twin, trusted=[f"{__name__}.TouchOnBuild"])  # trusted, it is built and runs its code
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafeFileError, match=r"probe.skops: refused: untrusted types found.*TouchOnBuild"):
        dfzoo.load_fitted(saved_probe)
    assert not marker.exists()


def test_a_saved_logistic_probe_may_hold_only_a_logistic_regression(saved_probe, tmp_path):
    """The trusted types follow the saved configuration: trees are refused, and so is another (trusted by
    skops) estimator in the classifier's slot."""
    import skops.io
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.naive_bayes import GaussianNB

    loaded = skops.io.load(
        saved_probe / "probe.skops",
        trusted=["sklearn.preprocessing._data.StandardScaler", "sklearn.linear_model._logistic.LogisticRegression"],
    )
    x, y = np.random.default_rng(0).normal(size=(20, 3)), np.repeat([0, 1], 10)
    skops.io.dump(
        {**loaded, "classifier.model": RandomForestClassifier(n_estimators=2).fit(x, y)}, saved_probe / "probe.skops"
    )
    with pytest.raises(UnsafeFileError, match=r"untrusted types found.*sklearn.tree._tree.Tree"):
        dfzoo.load_fitted(saved_probe)
    skops.io.dump({**loaded, "classifier.model": GaussianNB().fit(x, y)}, saved_probe / "probe.skops")
    with pytest.raises(
        UnsafeFileError,
        match=r"classifier\.model is a sklearn\.naive_bayes\.GaussianNB, expected a "
        r"sklearn\.linear_model\._logistic\.LogisticRegression",
    ):
        dfzoo.load_fitted(saved_probe)


def test_object_arrays_in_a_saved_model_are_refused(saved_probe, tmp_path):
    marker = tmp_path / "pwned"
    np.savez(saved_probe / "probe.npz", **{"scaler.keep": np.array([TouchOnUnpickle(marker)], dtype=object)})
    with pytest.raises(UnsafeFileError, match=r"probe\.npz: refused: it holds object arrays"):
        dfzoo.load_fitted(saved_probe)
    assert not marker.exists()


@pytest.mark.parametrize(
    "saved, message",
    [
        (1, r"older dfzoo \(format 1.*re-fit the detector"),
        (None, r"older dfzoo \(format None.*re-fit"),
        (FORMAT_VERSION + 1, r"newer dfzoo .*upgrade dfzoo"),
    ],
)
def test_another_format_is_a_clear_error(saved, message, saved_probe):
    meta = json.loads((saved_probe / META_FILE).read_text())
    meta["format"] = saved
    (saved_probe / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=message):
        dfzoo.load_fitted(saved_probe)


def test_a_probe_saved_by_the_pickle_format_asks_for_a_refit(saved_probe, tmp_path):
    """What an older dfzoo wrote: format 1 and probe.joblib (here a live payload), no probe.json."""
    marker = tmp_path / "pwned"
    for name in ("probe.json", "probe.npz", "probe.skops"):
        (saved_probe / name).unlink()
    (saved_probe / "probe.joblib").write_bytes(live_pickle(marker))
    meta = json.loads((saved_probe / META_FILE).read_text())
    (saved_probe / META_FILE).write_text(json.dumps({**meta, "format": 1}))
    with pytest.raises(ValueError, match="re-fit"):
        dfzoo.load_fitted(saved_probe)
    assert not marker.exists()


def test_saving_over_a_pickle_format_probe_removes_its_pickle(registry, folder_dataset, saved_probe):
    """A resumed run re-fits an old-format probe into the same folder; the next run must be able to load it."""
    (saved_probe / "probe.joblib").write_bytes(b"stale")
    samples = labelled_samples(folder_dataset)
    dfzoo.load_detector("probe", backbone="tiny_cnn").setup(RunContext(progress=False)).fit(samples).save(saved_probe)
    assert not (saved_probe / "probe.joblib").exists()
    assert dfzoo.load_fitted(saved_probe).fitted


def test_load_npz_reads_plain_arrays(tmp_path):
    np.savez(tmp_path / "ok.npz", a=np.arange(3), s=np.array(["x", "yz"]))
    arrays = load_npz(tmp_path / "ok.npz")
    assert arrays["a"].tolist() == [0, 1, 2] and arrays["s"].tolist() == ["x", "yz"]


# -- training checkpoints --------------------------------------------------------------------------------
def checkpoint_state(optimiser_name: str) -> tuple[dict, dict]:
    """A checkpoint shaped like :func:`dfzoo.training.train_model`'s, after two real optimiser steps."""
    from dataclasses import asdict

    import torch

    from dfzoo.training import EpochRecord

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1))
    optimiser = {
        "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    }[optimiser_name](model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    for _ in range(2):
        optimiser.zero_grad()
        scaler.scale(model(torch.randn(8, 4)).pow(2).mean()).backward()
        scaler.step(optimiser)
        scaler.update()
    record = EpochRecord(epoch=2, train_loss=0.5, val_loss=None, images=16, lr=1e-3)
    state = {
        "epoch": 2,
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "scaler": scaler.state_dict(),
        "history": [asdict(record)],
        "best_epoch": 1,
        "best_loss": 0.25,
        "bad_epochs": 1,
        "stopped_early": False,
        "skipped": {"3": "unreadable (truncated)"},
    }
    best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return state, best


def assert_same(loaded, saved) -> None:
    import torch

    if isinstance(saved, torch.Tensor):
        assert isinstance(loaded, torch.Tensor) and torch.equal(loaded, saved)
    elif isinstance(saved, dict):
        assert isinstance(loaded, dict) and set(loaded) == set(saved)
        for key in saved:
            assert_same(loaded[key], saved[key])
    elif isinstance(saved, (list, tuple)):
        assert type(loaded) is type(saved) and len(loaded) == len(saved)
        for a, b in zip(loaded, saved, strict=True):
            assert_same(a, b)
    else:
        assert loaded == saved and type(loaded) is type(saved)


@pytest.mark.parametrize("optimiser", ["adam", "sgd"])
def test_checkpoints_round_trip_under_weights_only(optimiser, tmp_path):
    import torch

    state, best = checkpoint_state(optimiser)
    Checkpointer(tmp_path, "k1").save(state, best)
    loaded, loaded_best = Checkpointer(tmp_path, "k1").load()
    assert loaded.pop("key") == "k1"
    assert_same(loaded, state)
    assert_same(loaded_best, best)
    fresh = torch.optim.Adam if optimiser == "adam" else torch.optim.SGD
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1))
    model.load_state_dict(loaded["model"])
    restored = fresh(model.parameters(), lr=1.0)
    restored.load_state_dict(loaded["optimiser"])
    assert_same(restored.state_dict(), state["optimiser"])


@pytest.mark.parametrize("name", [CHECKPOINT_FILE, BEST_FILE])
def test_a_checkpoint_holding_an_object_is_refused_not_executed(name, tmp_path):
    import torch

    marker = tmp_path / "pwned"
    state, best = checkpoint_state("adam")
    Checkpointer(tmp_path, "k1").save(state, best)
    payload = {**(state if name == CHECKPOINT_FILE else best), "key": "k1", "extra": TouchOnUnpickle(marker)}
    torch.save(payload, tmp_path / name)
    torch.load(tmp_path / name, weights_only=False)  # unsafely loaded, the payload runs
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafeFileError, match=rf"{name}: refused: it holds objects other than tensors"):
        Checkpointer(tmp_path, "k1").load()
    assert not marker.exists()


def test_a_truncated_checkpoint_is_ignored_and_training_starts_afresh(tmp_path):
    state, best = checkpoint_state("adam")
    Checkpointer(tmp_path, "k1").save(state, best)
    data = (tmp_path / CHECKPOINT_FILE).read_bytes()
    (tmp_path / CHECKPOINT_FILE).write_bytes(data[: len(data) // 2])
    assert Checkpointer(tmp_path, "k1").load() is None


def test_torch_load_refuses_a_plain_pickle(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "weights.pt").write_bytes(live_pickle(marker))
    with pytest.raises(UnsafeFileError, match=r"weights\.pt: refused"):
        torch_load(tmp_path / "weights.pt")
    assert not marker.exists()


# -- the result store ------------------------------------------------------------------------------------
def test_score_sidecars_round_trip_and_refuse_object_arrays(tmp_path):
    from dfzoo.benchmark.store import ResultStore

    store = ResultStore(tmp_path / "store")
    labels, scores = np.array([0, 1, 1]), np.array([0.1, np.nan, 0.9])
    store.save_scores("row1", labels, scores, generators=["real", "gan", "gan"], ids=["a.png", "b.png", "c.png"])
    got_labels, got_scores = store.load_scores("row1")
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(got_scores, scores)

    marker = tmp_path / "pwned"
    np.savez(store.scores_path("row2"), labels=np.array([0]), scores=np.array([TouchOnUnpickle(marker)]))
    assert store.load_scores("row2") is None  # unreadable: the row is missing, never computed from a pickle
    assert not marker.exists()


# -- the whole tree --------------------------------------------------------------------------------------
def unsafe_loads(path: Path, root: Path = ROOT) -> list[str]:
    """``np.load`` without ``allow_pickle=False``, ``torch.load`` without ``weights_only=True``, and any use of
    pickle/joblib loading, in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        keywords = {k.arg: k.value for k in node.keywords}
        required = {
            ("np", "load"): ("allow_pickle", False),
            ("numpy", "load"): ("allow_pickle", False),
            ("torch", "load"): ("weights_only", True),
        }.get((owner, node.func.attr))
        if required is not None:
            value = keywords.get(required[0])
            if not (isinstance(value, ast.Constant) and value.value is required[1]):
                found.append(
                    f"{path.relative_to(root)}:{node.lineno}: {owner}.load without {required[0]}={required[1]}"
                )
        elif (owner, node.func.attr) in {("pickle", "load"), ("pickle", "loads"), ("joblib", "load")}:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {owner}.{node.func.attr}")
    return found


def test_no_loader_in_the_package_can_unpickle():
    files = [p for part in ("core", "plugins", "benchmark") for p in sorted((ROOT / part).rglob("*.py"))]
    assert files
    assert [problem for path in files for problem in unsafe_loads(path)] == []


def test_the_source_check_finds_unsafe_loads(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text(
        "import numpy as np, torch, pickle\nnp.load('a')\nnp.load('a', allow_pickle=False)\n"
        "torch.load('b')\ntorch.load('b', weights_only=True)\npickle.loads(b'')\n"
    )
    assert [line.split(": ", 1)[1] for line in unsafe_loads(source, tmp_path)] == [
        "np.load without allow_pickle=False",
        "torch.load without weights_only=True",
        "pickle.loads",
    ]
