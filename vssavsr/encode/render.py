"""One chunk: evaluate the script, render the chunk's frames, encode them with ffmpeg into the work folder.

Runs inside a Ray task (or anywhere). The output frames of a chunk are those of the whole clip: each
output frame is computed from its own 7-frame window, which VapourSynth fetches around it, so a chunk
needs no special context handling. The file appears under its final name only once it is complete
(written to a ``.partial`` name, its frame count checked, then renamed), so a chunk is never half-written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vssavsr.encode import script as vpy
from vssavsr.encode.plan import Chunk

#: Lossless by default: FFV1 (version 3) in Matroska.
DEFAULT_FFMPEG_ARGS = ["-c:v", "ffv1", "-level", "3"]
PARTIAL_SUFFIX = ".partial"


class EncodeError(RuntimeError):
    pass


@dataclass(frozen=True)
class Job:
    """Everything a task needs besides its chunk (plain data: it travels to other machines)."""

    script: str
    args: dict = field(default_factory=dict)
    cwd: str | None = None
    workdir: str = "."
    ffmpeg_args: tuple = tuple(DEFAULT_FFMPEG_ARGS)
    num_frames: int = 0
    threads: int = 0  # torch and VapourSynth threads per task (0: leave the defaults)


def ffmpeg_bin() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise EncodeError("ffmpeg not found on this machine's PATH (Debian: apt-get install ffmpeg)")
    return exe


def count_frames(path: str | os.PathLike) -> int:
    """Video packets in a file (one per frame for the codecs a chunk holds), without decoding."""
    exe = shutil.which("ffprobe")
    if exe is None:
        raise EncodeError("ffprobe not found on this machine's PATH (it comes with ffmpeg)")
    res = subprocess.run(
        [exe, "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries", "stream=nb_read_packets",
         "-of", "csv=p=0", str(path)], capture_output=True, text=True,
    )
    if res.returncode != 0:
        raise EncodeError(f"ffprobe cannot read {path}: {res.stderr.strip()[-500:]}")
    return int(res.stdout.strip().splitlines()[0])


def check_y4m(clip) -> None:
    import vapoursynth as vs

    fmt = clip.format
    if fmt is None or fmt.color_family not in (vs.YUV, vs.GRAY) or clip.width == 0:
        name = "variable" if fmt is None else fmt.name
        raise EncodeError(
            f"the script's output is {name}; chunks are piped to ffmpeg as Y4M, which carries constant-format "
            "YUV or GRAY only: convert at the end of the script, e.g. "
            "clip = core.resize.Bicubic(clip, format=vs.YUV444P16, matrix_s='709')"
        )


def _apply_threads(threads: int) -> None:
    if threads > 0:
        import torch
        import vapoursynth as vs

        torch.set_num_threads(threads)
        vs.core.num_threads = threads


def render_chunk(job: Job, chunk: Chunk, report: Callable[[int], None] | None = None) -> dict:
    """Encode ``chunk`` into ``job.workdir``; returns ``{"chunk", "frames", "seconds", "skipped"}``.

    ``report(done)`` is called now and then with the frames rendered so far."""
    final = Path(job.workdir) / chunk.filename
    if final.is_file():
        return {"chunk": (chunk.start, chunk.end), "frames": chunk.frames, "seconds": 0.0, "skipped": True}
    t0 = time.time()
    _apply_threads(job.threads)
    partial = final.with_name(f"{final.stem}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
    log = partial.with_suffix(".log")
    try:
        with vpy.working_directory(job.cwd), vpy.rendering((chunk.start, chunk.end)):
            clip = vpy.load_output(job.script, job.args)
            if job.num_frames and clip.num_frames != job.num_frames:
                raise EncodeError(
                    f"the script gave {clip.num_frames} frames in this task but {job.num_frames} when the encode was "
                    "planned: a script must give the same clip everywhere (same files at the same paths on every machine)"
                )
            check_y4m(clip)
            _encode(clip[chunk.start:chunk.end], job.ffmpeg_args, partial, log, report)
        got = count_frames(partial)
        if got != chunk.frames:
            raise EncodeError(f"chunk {chunk.start}-{chunk.end}: ffmpeg wrote {got} frames, expected {chunk.frames}")
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
        log.unlink(missing_ok=True)
        import vapoursynth as vs

        vs.clear_outputs()
    return {"chunk": (chunk.start, chunk.end), "frames": chunk.frames, "seconds": time.time() - t0, "skipped": False}


def _encode(clip, ffmpeg_args, partial: Path, log: Path, report) -> None:
    cmd = [ffmpeg_bin(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "yuv4mpegpipe", "-i", "-",
           *ffmpeg_args, "-f", "matroska", str(partial)]
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.time()
        if report is not None and (now - last[0] > 0.5 or done == total):
            last[0] = now
            report(done)

    with log.open("wb") as err, subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=err) as proc:
        try:
            clip.output(proc.stdin, y4m=True, progress_update=progress)
        except BrokenPipeError:
            pass  # ffmpeg stopped reading: its message follows
        except BaseException:
            proc.kill()
            raise
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        rc = proc.wait()
    if rc != 0:
        message = log.read_text(errors="replace").strip()[-2000:]
        raise EncodeError(f"ffmpeg failed ({rc}) with arguments {' '.join(ffmpeg_args)}: {message}")
