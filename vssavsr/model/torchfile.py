"""Reading PyTorch weight files (``torch.save`` output, e.g. ``.pth``) safely, with errors that say what is wrong.

``torch.load(..., weights_only=True)`` does the reading: it builds tensors and plain containers
only, and refuses a pickle that names any other callable without calling it. When it fails, a
second look at the file's pickle says which entry is at fault: the first tensor that a truncated
file cuts off, or the entry of a refused pickle that asks to run code. That look uses an
unpickler that resolves every name in the pickle to an inert stand-in, so nothing the file names
is imported or called.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["TorchFileError", "load_weights", "Finding", "diagnose"]

_ZIP_MAGIC = b"PK\x03\x04"
# Callables a tensor pickle names; anything else is code the file asks us to run.
_TENSOR_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("collections", "OrderedDict"),
}
_ITEMSIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "UntypedStorage": 1,
}


class TorchFileError(ValueError):
    """A PyTorch file that cannot be read; ``kind`` is ``truncated``, ``unsafe`` or ``not_torch``;
    ``entry`` the entry at fault (``params/tail.weight``) when known."""

    def __init__(self, kind: str, detail: str, entry: str | None = None) -> None:
        self.kind = kind
        self.entry = entry
        super().__init__(detail)


def load_weights(path: "str | os.PathLike[str]") -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``; raises TorchFileError."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise _unreadable(path, exc) from None
        raise _refused(path, str(exc)) from None
    except Exception as exc:  # torch raises RuntimeError / EOFError / others for damaged files
        raise _unreadable(path, exc) from None


def _refused(path: Path, message: str) -> TorchFileError:
    """torch.load(weights_only=True) refused the pickle (it named a callable, or used an opcode that
    plain tensors never need); nothing ran. Say which entry, when the inert look finds it."""
    finding = diagnose(path)
    wanted = re.search(r"GLOBAL ([\w.]+)", message)
    if finding is not None and finding.kind == "unsafe":
        what = f"entry {finding.entry!r} of its pickle asks to run code ({finding.name})"
    elif wanted:
        what = f"its pickle asks to run code ({wanted.group(1)})"
    else:
        reason = [ln.strip() for ln in message.splitlines() if ln.strip()][-2:-1] or ["not plain tensors"]
        what = f"its pickle is not plain tensors ({reason[0][:200]})"
    return TorchFileError(
        "unsafe",
        f"refused: {what}; nothing was executed. A weights file holds only tensors: use the file from the official release",
        finding.entry if finding is not None else None,
    )


def _unreadable(path: Path, exc: Exception) -> TorchFileError:
    finding = diagnose(path)
    if finding is not None and finding.kind == "truncated":
        return TorchFileError("truncated", finding.detail, finding.entry)
    head = path.read_bytes()[:4] if path.is_file() else b""
    if head == _ZIP_MAGIC and "central directory" in str(exc):
        return TorchFileError("truncated", f"truncated or damaged PyTorch file ({path.stat().st_size} bytes; its zip "
                              "directory is missing)")
    return TorchFileError("not_torch", f"not a readable PyTorch weights file ({type(exc).__name__}: {_first_line(exc)})")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


# ------------------------------------------------------------------------------------------------
# diagnosis: an inert look at the pickle


@dataclass(frozen=True)
class Finding:
    kind: str  # "truncated" or "unsafe"
    entry: str | None  # "params/tail.weight"
    detail: str = ""
    name: str = ""  # the callable an unsafe entry names


class _Inert:
    """Stand-in for whatever a pickle names: records its arguments and items, runs nothing."""

    origin: tuple[str, str] = ("", "")

    def __init__(self, *args, **kwargs) -> None:
        self.args = args
        self.items: dict = {}

    def __setstate__(self, state) -> None:
        self.state = state

    def __setitem__(self, key, value) -> None:
        self.items[key] = value

    def append(self, value) -> None:
        self.items[len(self.items)] = value

    def extend(self, values) -> None:
        for v in values:
            self.append(v)


class _InertUnpickler(pickle._Unpickler):  # the pure-Python unpickler: every name goes through find_class
    def __init__(self, file) -> None:
        super().__init__(file)
        self._classes: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> type:
        key = (module, name)
        if key not in self._classes:
            self._classes[key] = type("Inert", (_Inert,), {"origin": key})
        return self._classes[key]

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            kind = pid[1].origin[1] if isinstance(pid[1], type) and issubclass(pid[1], _Inert) else ""
            return ("storage", str(pid[2]), int(pid[4]) * _ITEMSIZE.get(kind, 4))
        return ("unknown", str(pid), 0)


def _walk(obj, path: str, out: list) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _walk(v, f"{path}/{k}" if path else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _walk(v, f"{path}/{i}" if path else str(i), out)
    elif isinstance(obj, _Inert):
        if obj.origin in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter")):
            storage = obj.args[0] if obj.args else None
            if isinstance(storage, _Inert):  # a parameter wraps a tensor
                _walk(storage, path, out)
                return
            out.append(("tensor", path, storage))
        elif obj.origin in _TENSOR_GLOBALS:
            _walk(obj.items, path, out)
        else:
            out.append(("unsafe", path, ".".join(obj.origin)))


def diagnose(path: "str | os.PathLike[str]") -> Finding | None:
    """Which entry makes a torch file unreadable: the first entry that names code (zip archive or plain
    pickle), or the first tensor a truncated zip archive cuts off. None when nothing is found."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if not data.startswith(_ZIP_MAGIC):  # a plain pickle (or torch's legacy format: its first pickle is a number)
        try:
            root = _InertUnpickler(io.BytesIO(data)).load()
        except Exception:
            return None
        entries: list = []
        _walk(root, "", entries)
        return next((Finding("unsafe", e, name=info) for kind, e, info in entries if kind == "unsafe"), None)
    name_len, extra_len = struct.unpack("<HH", data[26:30])
    name = data[30 : 30 + name_len].decode("utf-8", "replace")
    if not name.endswith("data.pkl"):
        return None
    prefix = name[: -len("data.pkl")]
    try:
        root = _InertUnpickler(io.BytesIO(data[30 + name_len + extra_len :])).load()
    except Exception:
        return Finding("truncated", None, f"truncated or damaged PyTorch file ({len(data)} bytes): its index (data.pkl) "
                       "cannot be read")
    entries = []
    _walk(root, "", entries)
    for kind, entry, info in entries:
        if kind == "unsafe":
            return Finding("unsafe", entry, name=info)
    tensors = [(entry, info) for kind, entry, info in entries if kind == "tensor"]
    for i, (entry, storage) in enumerate(tensors):
        if not (isinstance(storage, tuple) and storage[0] == "storage"):
            continue
        end = _storage_end(data, f"{prefix}data/{storage[1]}".encode(), storage[2])
        if end is None or end > len(data):
            more = len(tensors) - i - 1
            tail = f" (and {more} tensor{'s' if more != 1 else ''} after it)" if more else ""
            return Finding(
                "truncated", entry,
                f"truncated PyTorch file ({len(data)} bytes): the data of {entry!r} is cut off{tail}",
            )
    return None


def _storage_end(data: bytes, member: bytes, nbytes: int) -> int | None:
    """End offset of zip member ``member``'s data (its local header gives the start), or None if absent."""
    pos = data.find(member)
    while pos != -1:
        start = pos - 30
        if start >= 0 and data[start : start + 4] == _ZIP_MAGIC:
            name_len, extra_len = struct.unpack("<HH", data[start + 26 : start + 30])
            if name_len == len(member):
                return pos + name_len + extra_len + nbytes
        pos = data.find(member, pos + 1)
    return None
