"""Presets of ``dfzoo run --preset NAME``: protocols shipped in ``benchmark/presets/NAME.toml``, sized for a
known time budget (``tiny``: the whole pipeline in about two minutes on 2 CPU cores). A preset's results go to
their own store and leaderboard (``runs/<name>/``), never over the default benchmark's."""

from __future__ import annotations

import difflib
import tomllib
from importlib import resources

from .protocol import Protocol, ProtocolError, parse_protocol

FOLDER = "presets"


def preset_names() -> list[str]:
    """The shipped presets, sorted."""
    folder = resources.files("dfzoo.benchmark") / FOLDER
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def preset_protocol(name: str) -> Protocol:
    """The protocol of preset ``name``; a :class:`ProtocolError` listing the presets for an unknown one."""
    item = resources.files("dfzoo.benchmark") / FOLDER / f"{name}.toml"
    if not item.is_file():
        close = difflib.get_close_matches(name, preset_names(), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ProtocolError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}{hint}")
    data = tomllib.loads(item.read_text())
    data.setdefault("name", name)
    return parse_protocol(data, source=f"dfzoo.benchmark/{FOLDER}/{name}.toml")


__all__ = ["preset_names", "preset_protocol"]
