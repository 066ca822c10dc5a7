"""The chunked encoder: ``vssavsr-encode SCRIPT.vpy -o OUT.mkv`` (also ``python -m vssavsr.encode``).

plan.py (chunks at scene cuts), render.py (one chunk: script -> frames -> ffmpeg), cluster.py (Ray tasks,
progress), join.py (ffmpeg concat), cli.py (the command). Ray is an optional extra: ``vssavsr[cluster]``.
"""

from vssavsr.encode.script import current_chunk


def main(argv=None) -> int:
    from vssavsr.encode.cli import main as _main

    return _main(argv)


__all__ = ["current_chunk", "main"]
