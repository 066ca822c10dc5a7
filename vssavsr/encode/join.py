"""Joining the chunks, in order and without re-encoding (ffmpeg's concat demuxer), into the output file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Sequence

from vssavsr.encode.plan import Chunk
from vssavsr.encode.render import EncodeError, count_frames, ffmpeg_bin


def concat_list(chunks: Sequence[Chunk]) -> str:
    # Names are ours (chunk-XXXXXXXX-XXXXXXXX.mkv): no quoting beyond the plain single quotes is needed.
    return "".join(f"file '{c.filename}'\n" for c in chunks)


def join_chunks(workdir: Path, chunks: Sequence[Chunk], out: Path) -> None:
    """Concatenate the chunk files of ``workdir`` into ``out`` (atomically: complete or absent)."""
    listing = workdir / "concat.txt"
    listing.write_text(concat_list(chunks))
    joined = workdir / ("joined" + (out.suffix or ".mkv"))
    cmd = [ffmpeg_bin(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "concat", "-safe", "0",
           "-i", str(listing), "-map", "0", "-c", "copy", str(joined)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        joined.unlink(missing_ok=True)
        raise EncodeError(f"joining the chunks failed: {res.stderr.strip()[-2000:]}")
    total = sum(c.frames for c in chunks)
    got = count_frames(joined)
    if got != total:
        joined.unlink(missing_ok=True)
        raise EncodeError(f"the joined file has {got} frames, expected {total}")
    os.replace(joined, out)
