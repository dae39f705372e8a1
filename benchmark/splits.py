"""How a protocol's dataset is opened and split into a training set and one test set per generator.

Splitting rules (no sample is ever on both sides):

- Training set = every sample of the train generators (their fakes and their own reals, if any) plus the
  shared reals (generator ``"real"``).
- Per test generator, the test set = its fakes plus its own reals when it has any, else the test part of the
  shared reals. Test generators ``"all"`` = every generator with fakes.
- When the dataset has splits, training uses split ``"train"`` and testing uses ``"test"`` (``"val"`` when
  the dataset has no ``"test"`` split).
- When it has none, anything used on both sides (the shared reals, and generators that are both train and
  test generators) is split 80/20 by a seeded hash of the sample's relative path (stable when files are
  added); a test generator not in training uses all its samples, a train-only generator all of its.
- ``cap_per_class`` keeps at most N samples per generator and label on each side, chosen by the same
  seeded hash (deterministic).
- No test image may hold the same bytes as a training image (found by content hash, hashing only files
  whose size appears more than once): such an overlap is an error naming the count and examples, unless the
  protocol sets ``allow_overlap = true``, which records the count in the split's notes and in each row's
  counts (``test_in_train``). The counts also give the number of distinct images per side and label
  (``train_real_distinct`` ...).

A cross-dataset protocol (``datasets.test``) opens every dataset (a :class:`CrossDatasetIndex`, see
:mod:`dfzoo.benchmark.protocol_datasets`, where datasets are opened) and applies the rules to each on its own: the
training dataset gives the training set (and, when it is also a test dataset, its test sets as above); every other
dataset is a test set only: all its generators, each with that dataset's own reals (its shared pool), from its
``test`` (else ``val``) split when it has splits, else all of it. Their test generators are named
``<dataset>/<generator>``. A leave-one-out protocol becomes one protocol per fold (:func:`expand_protocol`) before
any of this runs.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dfzoo.data.sample import FAKE, REAL, REAL_POOL, DatasetIndex, Sample

from .protocol import ALL, Protocol, ProtocolError
from .protocol_datasets import CrossDatasetIndex

TRAIN_FRACTION = 0.8
CROSS_SEPARATOR = "/"  # test generators of a cross-dataset protocol's other datasets: "<dataset>/<generator>"
LOO_PREFIX = "loo-"  # fold g of leave-one-out protocol p is protocol "p/loo-g"


def expand_protocol(protocol: Protocol, dataset: DatasetIndex) -> list[Protocol]:
    """The protocols that run: a leave-one-out protocol's folds, else the protocol itself.

    Fold ``g`` (one per generator of ``train_generators`` in the training dataset) trains on the others and
    tests on ``g`` (and on the others too with ``test_seen``); it is named ``<name>/loo-<g>`` and carries
    ``protocol_group`` and ``held_out``. Test datasets of a cross-dataset protocol are tested in every fold.
    """
    if not protocol.leave_one_out:
        return [protocol]
    train_part = dataset.parts[0][1] if isinstance(dataset, CrossDatasetIndex) else dataset
    if isinstance(dataset, CrossDatasetIndex) and not dataset.train_tested:
        raise ProtocolError(
            f"{protocol.name}: leave_one_out tests the held-out generators of the training dataset: "
            f"list {protocol.dataset!r} in datasets.test too"
        )
    if protocol.test_generators != ALL:
        raise ProtocolError(f"{protocol.name}: a leave_one_out protocol sets its folds' test generators itself")
    pool = _choose(protocol.train_generators, train_part.generators(), "train_generators", train_part)
    if len(pool) < 2:
        raise ProtocolError(
            f"{protocol.name}: leave_one_out needs at least two generators to rotate over, got {pool or 'none'}"
        )
    folds = []
    for held in pool:
        seen = tuple(g for g in pool if g != held)
        folds.append(
            protocol.replace(
                name=f"{protocol.name}/{LOO_PREFIX}{held}",
                train_generators=seen,
                test_generators=(held, *seen) if protocol.test_seen else (held,),
                leave_one_out=False,
                test_seen=False,
                protocol_group=protocol.name,
                held_out=held,
            )
        )
    return folds


@dataclass
class Split:
    """The samples a protocol uses: one training set and one test set per test generator.

    ``distinct`` holds, per side ("train" and each test generator), the number of distinct images (by content)
    per label; ``overlap`` the number of each test generator's images whose bytes are also in training.
    """

    train: list[Sample]
    tests: dict[str, list[Sample]]
    train_generators: list[str]
    test_generators: list[str]
    families: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    distinct: dict[str, dict[int, int]] = field(default_factory=dict)
    overlap: dict[str, int] = field(default_factory=dict)
    test_datasets: dict[str, str] = field(default_factory=dict)  # test generator -> the dataset it comes from

    def counts(self, generator: str | None = None) -> dict[str, int]:
        """Real/fake counts of the training set and (given a generator) of its test set: images used, distinct
        images by content, and test images also in training."""
        out = _label_counts("train", self.train, self.distinct.get(TRAIN_SIDE))
        if generator is not None:
            out |= _label_counts("test", self.tests[generator], self.distinct.get(generator))
            out["test_in_train"] = self.overlap.get(generator, 0)
        return out


TRAIN_SIDE = "train"  # key of the training set in Split.distinct


def _label_counts(side: str, samples: Sequence[Sample], distinct: Mapping[int, int] | None) -> dict[str, int]:
    out = {f"{side}_real": sum(s.label == REAL for s in samples), f"{side}_fake": sum(s.label == FAKE for s in samples)}
    if distinct is not None:
        out |= {f"{side}_real_distinct": distinct.get(REAL, 0), f"{side}_fake_distinct": distinct.get(FAKE, 0)}
    return out


def _relative(sample: Sample, root: Path | None, position: int) -> str:
    if sample.path is None:
        return f"<memory:{position}>"
    return os.path.relpath(sample.path, root) if root else str(sample.path)


def _unit_hash(seed: int, text: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def split_dataset(protocol: Protocol, dataset: DatasetIndex) -> Split:
    """Apply the splitting rules of the module docstring to ``dataset``; raises on unknown generators."""
    if isinstance(dataset, CrossDatasetIndex):
        split = _split_cross(protocol, dataset)
    else:
        split = _split_one(protocol, dataset, protocol.train_generators, protocol.test_generators)
        split.test_datasets = dict.fromkeys(split.tests, dataset.name)
    _check_overlap(split, protocol)
    return split


def _split_cross(protocol: Protocol, dataset: CrossDatasetIndex) -> Split:
    """The training dataset split as usual (tested only when listed in ``datasets.test``), then each other
    dataset's generators as test sets of their own, named ``<label>/<generator>``."""
    (train_label, train_part), *others = dataset.parts
    if not dataset.train_tested and protocol.test_generators != ALL:
        raise ProtocolError(
            f"{protocol.name}: test_generators picks among the training dataset's generators, but "
            f"datasets.test does not list the training dataset {protocol.dataset!r}"
        )
    split = _split_one(protocol, train_part, protocol.train_generators, protocol.test_generators, dataset.train_tested)
    split.test_datasets = dict.fromkeys(split.tests, train_label)
    for label, part in others:
        tested = _split_one(protocol, part, (), ALL)
        for generator in tested.test_generators:
            key = f"{label}{CROSS_SEPARATOR}{generator}"
            split.tests[key] = tested.tests[generator]
            split.test_generators.append(key)
            split.test_datasets[key] = label
            split.families[key] = tested.families.get(generator, "")
        split.notes.extend(f"{label}: {note}" for note in tested.notes)
    return split


def _split_one(
    protocol: Protocol,
    dataset: DatasetIndex,
    train_wanted: tuple[str, ...] | str,
    test_wanted: tuple[str, ...] | str,
    tested: bool = True,
) -> Split:
    """The rules on one dataset. ``train_wanted = ()``: a test-only dataset (nothing of it, not even its
    shared reals, goes to training); ``tested=False``: a training-only dataset (everything to training)."""
    available = dataset.generators()
    train_gens = _choose(train_wanted, available, "train_generators", dataset) if train_wanted else []
    explicit_test = test_wanted != ALL
    test_gens = _choose(test_wanted, available, "test_generators", dataset) if tested else []
    splits = {s.split for s in dataset.samples if s.split}
    test_split = "test" if "test" in splits else "val"
    if splits and train_gens and "train" not in splits:
        raise ProtocolError(f"{protocol.name}: dataset {dataset.name!r} has splits {sorted(splits)} but no 'train'")
    if splits and test_gens and test_split not in splits:
        raise ProtocolError(
            f"{protocol.name}: dataset {dataset.name!r} has splits {sorted(splits)} but neither 'test' nor 'val'"
        )

    by_group: dict[str, list[tuple[str, Sample]]] = {}
    for position, sample in enumerate(dataset.samples):
        if sample.label in (REAL, FAKE):
            by_group.setdefault(sample.generator, []).append((_relative(sample, dataset.root, position), sample))
    own_reals = {g for g, items in by_group.items() if g != REAL_POOL and any(s.label == REAL for _, s in items)}
    shared_on_test = any(g not in own_reals for g in test_gens)
    used_train = set(train_gens) | ({REAL_POOL} if train_gens else set())
    used_test = set(test_gens) | ({REAL_POOL} if shared_on_test else set())
    train_side: dict[str, list[tuple[str, Sample]]] = {}
    test_side: dict[str, list[tuple[str, Sample]]] = {}
    for group, items in by_group.items():
        on_train, on_test = group in used_train, group in used_test
        for item in items:
            rel, sample = item
            if splits and sample.split:
                to_train = on_train and sample.split == "train"
                to_test = on_test and sample.split == test_split
            elif on_train and on_test:
                to_train = _unit_hash(protocol.seed, rel) < TRAIN_FRACTION
                to_test = not to_train
            else:
                to_train, to_test = on_train, on_test
            if to_train:
                train_side.setdefault(group, []).append(item)
            if to_test:
                test_side.setdefault(group, []).append(item)

    train = _capped(train_side, protocol)
    test_groups = {g: _capped({g: items}, protocol) for g, items in test_side.items()}
    tests: dict[str, list[Sample]] = {}
    notes: list[str] = []
    for generator in test_gens:
        samples = test_groups.get(generator, [])
        fakes = [s for s in samples if s.label == FAKE]
        if not fakes:
            message = f"test generator {generator!r} has no fakes in the test part"
            if explicit_test:
                raise ProtocolError(f"{protocol.name}: {message}")
            notes.append(message + "; left out")
            continue
        reals = [s for s in samples if s.label == REAL] if generator in own_reals else test_groups.get(REAL_POOL, [])
        if not reals:
            notes.append(f"test generator {generator!r} has no reals in its test set (AUC undefined)")
        tests[generator] = fakes + reals
    if train_gens and not train and not splits:
        notes.append("the training set is empty")
    # a generator's family comes from its fakes (its own reals say "real"); none known stays "" (unknown)
    families = {s.generator: s.family for s in dataset.samples if s.family and s.label == FAKE} | dict(dataset.families)
    return Split(train, tests, list(train_gens), list(tests), families, notes)


def _check_overlap(split: Split, protocol: Protocol) -> None:
    """Fill ``split.distinct`` and ``split.overlap`` from content hashes; an overlap is an error unless allowed."""
    from dfzoo.data.duplicates import content_keys

    used = list({id(s): s for s in (*split.train, *(s for test in split.tests.values() for s in test))}.values())
    keys = {id(s): key for s, key in zip(used, content_keys(used), strict=True)}
    in_train: dict[str, Sample] = {}
    for sample in split.train:
        in_train.setdefault(keys[id(sample)], sample)
    for side, samples in {TRAIN_SIDE: split.train, **split.tests}.items():
        split.distinct[side] = dict(Counter(label for _, label in {(keys[id(s)], s.label) for s in samples}))
    pairs: dict[int, tuple[Sample, Sample]] = {}
    for generator, samples in split.tests.items():
        found = [(s, in_train[keys[id(s)]]) for s in samples if keys[id(s)] in in_train]
        split.overlap[generator] = len(found)
        pairs.update((id(s), (s, t)) for s, t in found)
    if not pairs:
        return
    examples = "; ".join(f"{test.display_name} = {train.display_name}" for test, train in list(pairs.values())[:3])
    message = f"{len(pairs)} test image(s) hold the same bytes as training images, e.g. {examples}"
    if not protocol.allow_overlap:
        raise ProtocolError(
            f"{protocol.name}: {message}. Remove the copies (`dfzoo data inspect` lists every "
            f"duplicate) or set allow_overlap = true in the protocol to run anyway"
        )
    split.notes.append(f"{message} (allow_overlap = true)")


def _choose(wanted: tuple[str, ...] | str, available: list[str], key: str, dataset: DatasetIndex) -> list[str]:
    if wanted == ALL:
        return list(available)
    unknown = [g for g in wanted if g not in available]
    if unknown:
        raise ProtocolError(
            f"{key}: unknown generator(s) {', '.join(unknown)} in dataset {dataset.name!r}; "
            f"its generators: {', '.join(available) or '(none)'}"
        )
    return list(wanted)


def _capped(groups: Mapping[str, list[tuple[str, Sample]]], protocol: Protocol) -> list[Sample]:
    """Samples of ``groups`` with at most ``cap_per_class`` per (generator, label), chosen by seeded hash."""
    out: list[Sample] = []
    for group in sorted(groups):
        for label in (REAL, FAKE):
            items = [(rel, s) for rel, s in groups[group] if s.label == label]
            if protocol.cap_per_class is not None and len(items) > protocol.cap_per_class:
                items = sorted(items, key=lambda item: _unit_hash(protocol.seed + 1, item[0]))[: protocol.cap_per_class]
                items.sort(key=lambda item: item[0])
            out.extend(s for _, s in items)
    return out


__all__ = ["CROSS_SEPARATOR", "LOO_PREFIX", "TRAIN_FRACTION", "Split", "expand_protocol", "split_dataset"]
