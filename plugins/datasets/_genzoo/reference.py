"""The zoo's reference builds: the content checksum each preset and seed gave on the machine that made the
committed leaderboard, with that build's package versions and CPU.

A build is compared with its reference at the end (``reference_match`` in the manifest and the dataset
metadata). Pinned numerics (:mod:`.numerics`) make a match expected on any x86 CPU with the same package
versions; another torch, diffusers, numpy, Pillow or scikit-image release may change the images, and a
mismatch then warns that leaderboard numbers on that zoo are per machine. Update an entry (from the new
build's manifest) whenever a deliberate change alters the images, together with ``ZOO_VERSION``.
"""

from __future__ import annotations

from typing import Any

_VERSIONS = {
    "torch": "2.14.1",
    "diffusers": "0.42.1",
    "numpy": "2.4.6",
    "pillow": "13.0.0",
    "scikit-image": "0.26.0",
    "scikit-learn": "1.9.1",
    "matplotlib": "3.11.2",
}
_CPU = "Intel(R) Xeon(R) Processor (AVX-512 host, built with the pinned AVX2 kernels)"

REFERENCE_BUILDS: dict[str, dict[str, Any]] = {  # "<preset>-seed<seed>-v<ZOO_VERSION>"
    "default-seed0-v3": {
        "content_sha256": "81786eec218ffc10f578c4d6e0648eb44605c979af12b7286297ec21a5d9f542",
        "versions": _VERSIONS,
        "cpu": _CPU,
    },
    "tiny-seed0-v3": {
        "content_sha256": "bd04f566befb06e8f9c68ada0ee9a3161751396089a515ab1dff5ee4dd82da57",
        "versions": _VERSIONS,
        "cpu": _CPU,
    },
}


class ZooReferenceMismatch(UserWarning):
    """The zoo built here has other images than the reference build of the same preset, seed and version."""


def compare_with_reference(preset: str, seed: int, version: int, checksum: str) -> dict[str, Any]:
    """The reference for this build and whether ``checksum`` matches it (``match`` is None: no reference)."""
    reference = REFERENCE_BUILDS.get(f"{preset}-seed{seed}-v{version}")
    if reference is None:
        return {"content_sha256": None, "match": None, "versions": {}, "cpu": None}
    return {**reference, "match": checksum == reference["content_sha256"]}
