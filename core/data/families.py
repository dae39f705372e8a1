"""Generator families of the folder names used by the public benchmarks (ForenSynths, UniversalFakeDetect,
GenImage, CIFAKE), so cross-family protocols work on those datasets without a user-written mapping.

Only names whose family is certain are listed; anything else stays "" (unknown) unless the user says.
"""

from __future__ import annotations

import re

GAN, DIFFUSION, AUTOREGRESSIVE, REAL_FAMILY = "gan", "diffusion", "autoregressive", "real"

# exact names (after normalise())
_EXACT = {
    "progan": GAN,
    "stylegan": GAN,
    "stylegan2": GAN,
    "stylegan3": GAN,
    "biggan": GAN,
    "cyclegan": GAN,
    "stargan": GAN,
    "gaugan": GAN,
    "whichfaceisreal": GAN,
    "guided": DIFFUSION,
    "adm": DIFFUSION,
    "midjourney": DIFFUSION,
    "vqdm": DIFFUSION,
    "wukong": DIFFUSION,
    "dalle2": DIFFUSION,
    "dalle3": DIFFUSION,
    "sd14": DIFFUSION,
    "sd15": DIFFUSION,
    "sdxl": DIFFUSION,
    "dalle": AUTOREGRESSIVE,  # UniversalFakeDetect's "dalle" folder is DALL-E mini
    "real": REAL_FAMILY,
}
# prefixes (after normalise()): glide_100_10, ldm_200_cfg, stable_diffusion_v_1_4, sd_v2...
_PREFIXES = (
    ("glide", DIFFUSION),
    ("ldm", DIFFUSION),
    ("stable_diffusion", DIFFUSION),
    ("sd_", DIFFUSION),
    ("stylegan", GAN),
)


def normalise(name: str) -> str:
    """Lower case, runs of non-alphanumerics as one "_": ``"Stable-Diffusion v1.4"`` -> ``stable_diffusion_v1_4``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def known_family(generator: str) -> str:
    """The family of a well-known generator folder name, or "" when it is not known for certain."""
    key = normalise(generator)
    if key in _EXACT:
        return _EXACT[key]
    for prefix, family in _PREFIXES:
        if key.startswith(prefix):
            return family
    return ""


__all__ = ["AUTOREGRESSIVE", "DIFFUSION", "GAN", "REAL_FAMILY", "known_family", "normalise"]
