"""Training configuration: YAML files under ``training/configs/`` with ``extends`` and command-line overrides.

A config may name another with ``extends: reference.yaml`` (relative to its own folder); the two are merged
key by key (lists are replaced, not merged). Overrides are ``dotted.key=value`` strings whose value is read as
YAML (``optim.lr=1e-4``, ``data.sources=[...]``, ``scales.fixed=2``). An override must name a setting the
config has (``reference.yaml`` lists them all), one of the few optional ones, or a key inside a free-form part
(``model.overrides``, a data source): a typo such as ``train.seed`` (for ``seed``) is an error, not a silent no-op.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Iterable

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: Settings the code reads that configs may leave out.
OPTIONAL_KEYS = ("scales.fixed", "model.config", "train.eval.data")
#: Parts whose keys are free-form (model config fields, per-source options).
FREE_FORM = ("model.overrides", "model.config", "data.sources.*")


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


def _dotted_keys(node, prefix: str = "") -> list[str]:
    items = enumerate(node) if isinstance(node, list) else node.items() if isinstance(node, dict) else ()
    keys = []
    for k, v in items:
        if str(k).startswith("_"):
            continue
        key = f"{prefix}{k}"
        keys.append(key)
        keys.extend(_dotted_keys(v, key + "."))
    return keys


def _is_free_form(key: str) -> bool:
    parts = key.split(".")
    for pattern in FREE_FORM:
        want = pattern.split(".")
        if len(parts) > len(want) and all(w in ("*", p) for w, p in zip(want, parts)):
            return True
    return False


def check_override_key(cfg: dict, key: str) -> None:
    """Raise ValueError when ``key`` is no setting of ``cfg`` (with the closest names as the fix)."""
    missing = object()
    if get_dotted(cfg, key, missing) is not missing or key in OPTIONAL_KEYS or _is_free_form(key):
        return
    known = _dotted_keys(cfg) + list(OPTIONAL_KEYS)
    last = key.rsplit(".", 1)[-1]
    close = [k for k in known if k.rsplit(".", 1)[-1] == last]
    close += [k for k in difflib.get_close_matches(key, known, n=3) if k not in close]
    hint = f"did you mean {' or '.join(close[:3])}?" if close else "see training/configs/reference.yaml for the settings"
    raise ValueError(f"override {key!r}: the config has no such setting; {hint}")


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> dict:
    """``cfg`` with each ``key=value`` of ``overrides`` applied (keys checked, see the module docs)."""
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
        key = key.strip()
        check_override_key(cfg, key)
        set_dotted(cfg, key, value)
    return cfg


def dump(cfg: dict) -> str:
    return yaml.safe_dump({k: v for k, v in cfg.items() if not k.startswith("_")}, sort_keys=False)
