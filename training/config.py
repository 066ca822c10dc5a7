"""Training configuration: YAML files under ``training/configs/`` with ``extends`` and command-line overrides.

A config may name another with ``extends: reference.yaml`` (relative to its own folder); the two are merged
key by key (lists are replaced, not merged). Overrides are ``dotted.key=value`` strings whose value is read as
YAML (``optim.lr=1e-4``, ``data.sources=[...]``, ``scales.fixed=2``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def find_config(name: str | Path) -> Path:
    """A config path, or a name of a shipped config (``cpu-default`` -> training/configs/cpu-default.yaml)."""
    p = Path(name)
    if p.is_file():
        return p
    for cand in (CONFIG_DIR / p, CONFIG_DIR / f"{p}.yaml"):
        if cand.is_file():
            return cand
    shipped = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"config {name!r} not found (shipped configs: {shipped})")


def load_config(name: str | Path, _seen: tuple = ()) -> dict:
    path = find_config(name).resolve()
    if path in _seen:
        raise ValueError(f"config 'extends' loop at {path}")
    cfg = yaml.safe_load(path.read_text()) or {}
    parent = cfg.pop("extends", None)
    if parent:
        base = load_config(path.parent / parent if not Path(parent).is_absolute() else parent, _seen + (path,))
        cfg = deep_merge(base, cfg)
    cfg.setdefault("name", path.stem)
    cfg["_file"] = str(path)
    return cfg


def _child(node, part: str, create: bool):
    if isinstance(node, list):
        try:
            return node[int(part)]
        except (ValueError, IndexError):
            raise KeyError(f"{part!r}: not an index of a list of {len(node)}") from None
    if part not in node or not isinstance(node[part], (dict, list)):
        if not create:
            raise KeyError(part)
        node[part] = {}
    return node[part]


def set_dotted(cfg: dict, key: str, value: Any) -> None:
    """``data.batch_size`` or ``data.sources.0.weight`` (list items by index)."""
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        node = _child(node, p, create=True)
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value


def get_dotted(cfg: dict, key: str, default: Any = None) -> Any:
    node = cfg
    for p in key.split("."):
        try:
            node = node[int(p)] if isinstance(node, list) else node[p]
        except (KeyError, IndexError, ValueError, TypeError):
            return default
    return node


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> dict:
    cfg = copy.deepcopy(cfg)
    for item in overrides or ():
        if "=" not in item:
            raise ValueError(f"override {item!r}: expected key=value (e.g. optim.lr=1e-4)")
        key, text = item.split("=", 1)
        value = yaml.safe_load(text)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        set_dotted(cfg, key.strip(), value)
    return cfg


def dump(cfg: dict) -> str:
    return yaml.safe_dump({k: v for k, v in cfg.items() if not k.startswith("_")}, sort_keys=False)
