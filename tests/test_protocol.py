"""Protocol parsing, validation errors, detector expansion and the train/test splitting rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfzoo.benchmark.entries import resolve_detectors
from dfzoo.benchmark.protocol import (
    ALL,
    Protocol,
    ProtocolError,
    default_protocols,
    load_protocol,
    parse_params,
    parse_protocol,
    protocol_from_flags,
)
from dfzoo.benchmark.splits import split_dataset
from dfzoo.data.sample import REAL_POOL, DatasetIndex, Sample
from dfzoo.registry import Registry, use_registry
from dfzoo.transforms import PreprocessPolicy
from tests.kit import make_registry


@pytest.fixture
def bench_registry() -> Registry:
    registry = make_registry()
    with use_registry(registry):
        yield registry


def _protocol(**fields) -> Protocol:
    return parse_protocol({"name": "p", "dataset": "tinyzoo", **fields})


def _index(per_generator: dict[str, tuple[int, int]], split_of=lambda g, label, i: "") -> DatasetIndex:
    """generator -> (reals, fakes); reals of generator "real" are the shared pool."""
    samples = []
    for generator, (reals, fakes) in per_generator.items():
        for label, count in ((0, reals), (1, fakes)):
            for i in range(count):
                path = Path("/data") / generator / str(label) / f"{i:04d}.png"
                samples.append(
                    Sample(
                        path=path,
                        label=label,
                        generator=generator,
                        family="real" if generator == REAL_POOL else "gan",
                        split=split_of(generator, label, i),
                    )
                )
    return DatasetIndex(name="synthetic", layout="test", root=Path("/data"), samples=samples)


# -- parsing ---------------------------------------------------------------------------------------------
def test_toml_file_round_trip(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text("""
dataset = "data/folder"
train_generators = ["a", "b"]
test_generators = ["c"]
seed = 3
cap_per_class = 10
perturbations = ["none", "blur:sigma=1"]
train_perturbation = "jpeg:quality=90"
offline_only = true
[preprocess]
mode = "center_crop"
size = 224
[[detectors]]
name = "hf_energy"
params = { fail = "" }
label = "plain"
[detector_params.hf_energy]
fail = ""
""")
    protocol = load_protocol(tmp_path / "mine.toml")
    assert protocol.name == "mine"  # from the file name
    assert protocol.train_generators == ("a", "b") and protocol.test_generators == ("c",)
    assert protocol.preprocess == PreprocessPolicy("center_crop", 224)
    assert protocol.seed == 3 and protocol.cap_per_class == 10 and protocol.offline_only
    assert protocol.perturbations == ("none", "blur:sigma=1")
    assert protocol.detectors[0].label == "plain" and protocol.base_dir == str(tmp_path.resolve())
    assert protocol.to_dict()["preprocess"] == {"mode": "center_crop", "size": 224}


def test_defaults() -> None:
    protocol = _protocol()
    assert protocol.train_generators == ALL and protocol.test_generators == ALL
    assert protocol.perturbations == ("none",) and protocol.train_perturbation == "none"
    assert protocol.preprocess == PreprocessPolicy("resize", None)
    assert [d.name for d in protocol.detectors] == ["*"] and protocol.bootstrap == 1000


def test_default_protocols_are_shipped() -> None:
    protocols = {p.name: p for p in default_protocols()}
    assert set(protocols) == {"zoo-gan", "zoo-diffusion", "zoo-families"}
    assert protocols.pop("zoo-families").train_generators == ("gan_tconv", "gan_upsample", "diff_ddpm", "ae_vae")
    assert protocols["zoo-gan"].train_generators == ("gan_tconv",)
    assert protocols["zoo-diffusion"].train_generators == ("diff_ddpm",)
    assert protocols["zoo-gan"].perturbations == ("none", "jpeg:quality=75")
    assert protocols["zoo-diffusion"].perturbations == ("none",)
    for protocol in protocols.values():
        assert protocol.dataset == "zoo" and protocol.test_generators == ALL and protocol.offline_only
        assert protocol.detector_params["nn_cosine"] == {"backbone": "efficientnet_lite0"}
        assert protocol.detector_params["clip_probe"] == {"backbone": "efficientnet_lite0"}
        assert protocol.preprocess == PreprocessPolicy("resize", None)


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"trian_generators": ["a"]}, "unknown key(s) trian_generators"),
        ({"preprocess": {"mode": "squash"}}, "preprocess mode"),
        ({"preprocess": {"mode": "resize", "sise": 3}}, "preprocess: unknown key(s) sise"),
        ({"preprocess": {"size": -1}}, "positive integer"),
        ({"detectors": [{"name": "x", "parms": {}}]}, "unknown key(s) parms"),
        ({"detectors": [{"params": {}}]}, "needs a 'name'"),
        ({"detectors": []}, "no detectors"),
        ({"perturbations": ["jpeg:quality"]}, "not key=value"),
        ({"perturbations": ["none", "none"]}, "twice"),
        ({"cap_per_class": 0}, "cap_per_class"),
        ({"seed": "zero"}, "seed"),
        ({"train_generators": []}, "train_generators"),
        ({"offline_only": "yes"}, "offline_only"),
    ],
)
def test_malformed_protocols_raise_clear_errors(fields: dict, message: str) -> None:
    with pytest.raises(ProtocolError, match=None) as error:
        _protocol(**fields)
    assert message in str(error.value)
    assert str(error.value).startswith("<protocol>:")


def test_missing_dataset_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="missing 'dataset'"):
        parse_protocol({"name": "x"})
    (tmp_path / "bad.toml").write_text("name = ")
    with pytest.raises(ProtocolError, match="not valid TOML"):
        load_protocol(tmp_path / "bad.toml")


def test_flags_and_params() -> None:
    assert parse_params(["k=3", "backbone=efficientnet_lite0", "x=0.5", "on=true", 'q="a b"']) == {
        "k": 3,
        "backbone": "efficientnet_lite0",
        "x": 0.5,
        "on": True,
        "q": "a b",
    }
    with pytest.raises(ProtocolError, match="key=value"):
        parse_params(["novalue"])
    protocol = protocol_from_flags(
        dataset="tinyzoo",
        train="gan_a,gan_b",
        test="all",
        detectors=["hf_energy"],
        params={"fail": ""},
        preprocess="center_crop",
        size=64,
        seed=2,
        cap=5,
        perturbations=["jpeg:quality=50"],
    )
    assert protocol.train_generators == ("gan_a", "gan_b") and protocol.cap_per_class == 5
    assert protocol.detectors[0].params == {"fail": ""} and protocol.preprocess.key == "center_crop:64"
    assert protocol.name == "cli-tinyzoo" and protocol.perturbations == ("jpeg:quality=50",)
    assert protocol.replace(seed=9).seed == 9
    with pytest.raises(ProtocolError):
        protocol.replace(cap_per_class=-2)


# -- detectors -------------------------------------------------------------------------------------------
def test_detector_expansion_labels_and_params(bench_registry: Registry) -> None:
    protocol = _protocol(
        detectors=[{"name": "*"}, {"name": "hf_energy", "params": {"fail": "fit"}}],
        detector_params={"needs_weights": {"backbone": "other"}},
    )
    resolved = {d.label: d for d in resolve_detectors(protocol, bench_registry)}
    assert set(resolved) == {"hf_energy", "needs_weights[backbone=other]", "hf_energy[fail=fit]"}
    assert resolved["needs_weights[backbone=other]"].params == {"backbone": "other"}
    assert resolved["hf_energy"].params_hash != resolved["hf_energy[fail=fit]"].params_hash
    # wildcard params reach only the detectors that declare them
    wild = resolve_detectors(_protocol(detectors=[{"name": "*", "params": {"fail": "x"}}]), bench_registry)
    assert {d.label for d in wild} == {"hf_energy[fail=x]", "needs_weights"}


def test_detector_validation_errors(bench_registry: Registry) -> None:
    with pytest.raises(ProtocolError, match=r"no detector named 'hf_energi'.*hf_energy"):
        resolve_detectors(_protocol(detectors=[{"name": "hf_energi"}]), bench_registry)
    with pytest.raises(ProtocolError, match=r"has no parameter.*colour"):
        resolve_detectors(_protocol(detectors=[{"name": "hf_energy", "params": {"colour": 1}}]), bench_registry)
    with pytest.raises(ProtocolError, match="share the label"):
        resolve_detectors(
            _protocol(
                detectors=[
                    {"name": "hf_energy", "label": "x"},
                    {"name": "hf_energy", "params": {"fail": "fit"}, "label": "x"},
                ]
            ),
            bench_registry,
        )


def test_offline_only_marks_missing_weights(bench_registry: Registry) -> None:
    resolved = {d.name: d for d in resolve_detectors(_protocol(offline_only=True), bench_registry)}
    assert resolved["hf_energy"].skip_reason == ""
    assert "absent_weights" in resolved["needs_weights"].skip_reason
    relaxed = {d.name: d for d in resolve_detectors(_protocol(), bench_registry)}
    assert relaxed["needs_weights"].skip_reason == ""


# -- splits ----------------------------------------------------------------------------------------------
def _paths(samples) -> set[str]:
    return {str(s.path) for s in samples}


def test_shared_reals_never_leak_between_train_and_test() -> None:
    dataset = _index({REAL_POOL: (200, 0), "a": (0, 100), "b": (0, 60), "c": (0, 40)})
    split = split_dataset(_protocol(train_generators=["a"]), dataset)
    train = _paths(split.train)
    assert split.test_generators == ["a", "b", "c"]
    for generator, samples in split.tests.items():
        assert not train & _paths(samples), generator
        assert {s.generator for s in samples} == {generator, REAL_POOL}
    test_reals = _paths(s for s in split.tests["b"] if s.label == 0)
    train_reals = {p for p in train if "/real/" in p}
    assert test_reals | train_reals == _paths(s for s in dataset.samples if s.generator == REAL_POOL)
    assert 0.7 < len(train_reals) / 200 < 0.9  # about 80/20
    assert _paths(s for s in split.tests["c"] if s.label == 0) == test_reals  # the same reals for every test
    # an unseen generator is tested on all its fakes; a seen one on the part not trained on
    assert sum(s.label for s in split.tests["b"]) == 60
    a_test, a_train = _paths(s for s in split.tests["a"] if s.label), {p for p in train if "/a/" in p}
    assert len(a_test) + len(a_train) == 100 and not a_test & a_train
    assert split.counts("b")["test_fake"] == 60


def test_split_is_deterministic_and_seeded() -> None:
    dataset = _index({REAL_POOL: (100, 0), "a": (0, 50), "b": (0, 50)})
    first = split_dataset(_protocol(train_generators=["a"]), dataset)
    again = split_dataset(_protocol(train_generators=["a"]), dataset)
    other = split_dataset(_protocol(train_generators=["a"], seed=1), dataset)
    assert _paths(first.train) == _paths(again.train)
    assert _paths(first.train) != _paths(other.train)


def test_train_only_generator_gives_all_its_samples_to_training() -> None:
    dataset = _index({REAL_POOL: (40, 0), "a": (0, 30), "b": (0, 20)})
    split = split_dataset(_protocol(train_generators=["a"], test_generators=["b"]), dataset)
    assert sum(s.generator == "a" for s in split.train) == 30
    assert list(split.tests) == ["b"]


def test_own_reals_are_used_when_a_generator_has_them() -> None:
    dataset = _index({REAL_POOL: (30, 0), "a": (20, 20), "b": (10, 10)})
    split = split_dataset(_protocol(train_generators=["a"], test_generators=["b"]), dataset)
    assert {s.generator for s in split.tests["b"]} == {"b"} and len(split.tests["b"]) == 20
    # shared reals are used only for training here, so they are not split
    assert sum(s.generator == REAL_POOL for s in split.train) == 30


def test_dataset_splits_are_respected_with_val_fallback() -> None:
    def split_of(generator, label, i):
        return "train" if i % 2 == 0 else "val"

    dataset = _index({REAL_POOL: (20, 0), "a": (0, 10), "b": (0, 10)}, split_of)
    split = split_dataset(_protocol(train_generators=["a"]), dataset)
    assert {s.split for s in split.train} == {"train"}
    assert all(s.split == "val" for samples in split.tests.values() for s in samples)
    assert sum(s.label for s in split.tests["b"]) == 5  # only b's val part, even though b is unseen
    with_test = _index({REAL_POOL: (20, 0), "a": (0, 9)}, lambda g, label, i: ("train", "val", "test")[i % 3])
    tested = split_dataset(_protocol(train_generators=["a"]), with_test)
    assert all(s.split == "test" for s in tested.tests["a"])


def test_cap_per_class_is_seeded_per_generator_and_label() -> None:
    dataset = _index({REAL_POOL: (100, 0), "a": (0, 50), "b": (0, 50)})
    split = split_dataset(_protocol(train_generators=["a"], test_generators=["b"], cap_per_class=7), dataset)
    assert sum(s.generator == "a" for s in split.train) == 7
    assert sum(s.generator == REAL_POOL for s in split.train) == 7
    assert len(split.tests["b"]) == 14
    again = split_dataset(_protocol(train_generators=["a"], test_generators=["b"], cap_per_class=7), dataset)
    assert _paths(split.tests["b"]) == _paths(again.tests["b"])


def test_unknown_generators_list_the_dataset_generators() -> None:
    dataset = _index({REAL_POOL: (10, 0), "a": (0, 5), "b": (0, 5)})
    with pytest.raises(ProtocolError, match=r"unknown generator\(s\) zz.*its generators: a, b"):
        split_dataset(_protocol(train_generators=["zz"]), dataset)
    with pytest.raises(ProtocolError, match="test_generators"):
        split_dataset(_protocol(train_generators=["a"], test_generators=["a", "q"]), dataset)


def test_unknown_dataset_name_is_explained(bench_registry: Registry) -> None:
    from dfzoo.benchmark.protocol_datasets import open_protocol_dataset

    with pytest.raises(ProtocolError, match=r"'nozoo' is neither an installed named dataset \(tinyzoo\)"):
        open_protocol_dataset(_protocol(dataset="nozoo"), bench_registry)


# -- train/test overlap by content ----------------------------------------------------------------------
def _file_index(root: Path, per_generator: dict[str, tuple[int, int]], copies: dict[str, str]) -> DatasetIndex:
    """Real files with distinct bytes (generator -> (reals, fakes)), then ``copies``: new name -> copied file."""
    samples = []
    for generator, (reals, fakes) in per_generator.items():
        for label, count in ((0, reals), (1, fakes)):
            for i in range(count):
                path = root / generator / str(label) / f"{i:03d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f"{generator}-{label}-{i}".encode())
                samples.append(Sample(path=path, label=label, generator=generator))
    for new, old in copies.items():
        (root / new).write_bytes((root / old).read_bytes())
        generator, label = new.split("/")[:2]
        samples.append(Sample(path=root / new, label=int(label), generator=generator))
    return DatasetIndex(name="files", layout="test", root=root, samples=samples)


def test_a_test_image_with_training_bytes_is_an_error(tmp_path: Path) -> None:
    dataset = _file_index(
        tmp_path,
        {REAL_POOL: (10, 0), "a": (0, 4), "b": (0, 3)},
        {"b/1/copy1.png": "a/1/000.png", "b/1/copy2.png": "a/1/001.png"},
    )
    with pytest.raises(
        ProtocolError,
        match=r"p: 2 test image\(s\) hold the same bytes as training images, "
        r"e\.g\. .*b/1/copy1\.png = .*a/1/000\.png; .*copy2.*"
        r"set allow_overlap = true",
    ):
        split_dataset(_protocol(train_generators=["a"], test_generators=["b"]), dataset)


def test_allowed_overlap_is_counted_with_distinct_images(tmp_path: Path) -> None:
    dataset = _file_index(
        tmp_path,
        {REAL_POOL: (10, 0), "a": (0, 4), "b": (0, 3)},
        {"b/1/copy1.png": "a/1/000.png", "a/1/again.png": "a/1/001.png"},
    )
    split = split_dataset(_protocol(train_generators=["a"], test_generators=["b"], allow_overlap=True), dataset)
    counts = split.counts("b")
    assert counts["test_in_train"] == 1 and counts["test_fake"] == 4 and counts["test_fake_distinct"] == 4
    assert counts["train_fake"] == 5 and counts["train_fake_distinct"] == 4  # a holds one image twice
    assert counts["train_real"] + counts["test_real"] == 10
    assert counts["train_real_distinct"] == counts["train_real"]
    assert split.notes == [
        f"1 test image(s) hold the same bytes as training images, e.g. {tmp_path}/b/1/copy1.png = "
        f"{tmp_path}/a/1/000.png (allow_overlap = true)"
    ]


def test_a_symlinked_real_folder_leaks_nothing_into_the_test_set(tmp_path: Path, registry: Registry) -> None:
    """`ganA/0_real/more -> ..` once imported ganA's fakes as reals: with train = test generator, most test
    images were training images. Now the link is not followed and the split checks the bytes."""
    import os

    from dfzoo.data.layouts import open_dataset

    for label, count in (("0_real", 12), ("1_fake", 11)):
        for i in range(count):
            path = tmp_path / "ganA" / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"{label}-{i}".encode())
    os.symlink("..", tmp_path / "ganA" / "0_real" / "more")
    dataset = open_dataset(tmp_path, registry=registry)
    split = split_dataset(_protocol(train_generators=["ganA"]), dataset)
    counts = split.counts("ganA")
    assert counts["test_in_train"] == 0
    assert counts["train_real"] + counts["test_real"] == 12 and counts["train_fake"] + counts["test_fake"] == 11


def test_allow_overlap_is_a_boolean_key_in_the_protocol_and_its_hash() -> None:
    from dfzoo.benchmark.protocol import settings_hash

    plain, allowed = _protocol(), _protocol(allow_overlap=True)
    assert plain.allow_overlap is False and allowed.allow_overlap is True
    assert plain.to_dict()["allow_overlap"] is False and allowed.to_dict()["allow_overlap"] is True
    assert settings_hash(plain, "f") != settings_hash(allowed, "f")
    with pytest.raises(ProtocolError, match="'allow_overlap' must be true or false, got 'yes'"):
        _protocol(allow_overlap="yes")
