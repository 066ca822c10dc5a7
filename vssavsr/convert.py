"""Convert the authors' released SAVSR weights to vssavsr's checkpoint format.

    python -m vssavsr.convert savsr_best.pth -o savsr-official.safetensors

The output is a safetensors checkpoint (nothing in it can run code when loaded) holding the same
fp32 weights, the configuration read from the file (``savsr-official`` for the release) and, in
its metadata, the source file's name and SHA-256. Loading it gives the same outputs as loading the
``.pth`` itself; both work anywhere a checkpoint is taken (``checkpoint=`` of the filter).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["convert", "main"]


def convert(source: "str | Path", output: "str | Path | None" = None) -> Path:
    """Write ``source`` (an official ``.pth``, or any checkpoint ``load_checkpoint`` reads) to ``output``
    (default: beside it, ``.safetensors``) in our format; returns the output path. Raises CheckpointError."""
    from vssavsr import __version__
    from vssavsr.model import load_checkpoint, save_checkpoint
    from vssavsr.model.official import file_sha256

    source = Path(source)
    output = Path(output) if output is not None else source.with_suffix(".safetensors")
    if output.resolve() == source.resolve():
        raise ValueError(f"-o {output}: the output would overwrite the source file")
    net, meta = load_checkpoint(source)
    meta = {**meta, "source_file": source.name, "source_sha256": meta.get("source_sha256") or file_sha256(source),
            "converted_by": f"vssavsr.convert {__version__}"}
    return save_checkpoint(net, output, metadata=meta)


def _config_name(config) -> str:
    from vssavsr.model import NAMED_CONFIGS

    return next((name for name, cfg in NAMED_CONFIGS.items() if cfg == config), f"custom ({config.layout} layout)")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vssavsr.convert", description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="the official weights (savsr_best.pth) or another checkpoint")
    ap.add_argument("-o", "--output", default=None, help="output .safetensors (default: beside the source)")
    args = ap.parse_args(argv)
    from vssavsr.model import CheckpointError, load_checkpoint

    try:
        out = convert(args.source, args.output)
    except (CheckpointError, ValueError) as exc:
        print(f"vssavsr.convert: {exc}", file=sys.stderr)
        return 2
    net, meta = load_checkpoint(out)
    params = sum(p.numel() for p in net.parameters())
    print(f"wrote {out}: configuration {_config_name(net.config)} ({params:,} parameters), "
          f"from {meta['source_file']} (sha256 {meta['source_sha256']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
