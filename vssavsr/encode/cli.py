"""vssavsr-encode: render a VapourSynth script in chunks on Ray and join them into one file.

    vssavsr-encode SCRIPT.vpy -o OUT.mkv [--workers N] [--address RAY_ADDRESS] [--chunk-frames N]
                   [--arg key=value ...] [-- FFMPEG_OUTPUT_ARGS ...]

Plan: the script's output is cut into chunks at its scene cuts (else every --chunk-frames frames, by default
about 10 s). Run: each chunk is a Ray task that evaluates the same script, renders its frames and encodes
them with the ffmpeg output arguments (default: lossless FFV1). Join: the chunks are concatenated in order,
without re-encoding, into OUT. Finished chunks wait in OUT's work folder (OUT.chunks/, beside OUT): running
the same command again renders only what is missing.

Without --address a local Ray instance is started on 127.0.0.1 and stopped at the end; with --address the
encode joins a running cluster (`ray start --head`, then `ray start --address=HEAD:6379` on each machine),
where every machine must see the script, its inputs and OUT's folder at the same paths (shared storage).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

from vssavsr.encode import plan as planning
from vssavsr.encode import script as vpy
from vssavsr.encode.render import DEFAULT_FFMPEG_ARGS, PARTIAL_SUFFIX, EncodeError, Job, check_y4m

WORK_SUFFIX = ".chunks"


def work_folder(out: Path) -> Path:
    return out.parent / (out.name + WORK_SUFFIX)


def parse(argv: Sequence[str] | None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ffmpeg_args = None
    if "--" in argv:
        k = argv.index("--")
        argv, ffmpeg_args = argv[:k], argv[k + 1:]
    ap = argparse.ArgumentParser(
        prog="vssavsr-encode", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s SCRIPT.vpy -o OUT.mkv [options] [-- FFMPEG_OUTPUT_ARGS ...]",
    )
    ap.add_argument("script", help="the VapourSynth script (.vpy); its output 0 is encoded")
    ap.add_argument("-o", "--output", required=True, help="the output file (its extension picks the container)")
    ap.add_argument("--workers", type=int, default=None,
                    help="chunks rendered at once (default: one per GPU; without GPUs one per 4 CPU cores)")
    ap.add_argument("--address", default=None, help="join this Ray cluster (e.g. HEAD:6379) instead of starting one")
    ap.add_argument("--cpus", type=int, default=None, help="CPUs the local Ray instance may use (default: all)")
    ap.add_argument("--chunk-frames", type=int, default=None, help="longest chunk in frames (default: about 10 s)")
    ap.add_argument("--arg", "-a", action="append", default=[], metavar="KEY=VALUE",
                    help="a global for the script, as with vspipe -a (repeatable)")
    ap.add_argument("--retries", type=int, default=3, help="times a failed chunk task is retried (default 3)")
    ap.add_argument("--restart", action="store_true",
                    help="discard the chunks of an earlier encode with other settings instead of stopping")
    ap.add_argument("--keep-chunks", action="store_true", help="keep the work folder after joining")
    ap.add_argument("-y", "--overwrite", action="store_true", help="replace OUT if it exists")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="show Ray's and the workers' messages")
    args = ap.parse_args(argv)
    args.ffmpeg_args = ffmpeg_args if ffmpeg_args else list(DEFAULT_FFMPEG_ARGS)
    for name in ("workers", "cpus", "chunk_frames"):
        value = getattr(args, name)
        if value is not None and value < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.retries < 0:
        ap.error("--retries must be >= 0")
    return args


def say(msg: str) -> None:
    print(f"vssavsr-encode: {msg}", file=sys.stderr, flush=True)


def make_plan(script: Path, script_args: dict, chunk_frames: int | None, identity: dict,
              progress: bool) -> planning.Plan:
    """Evaluate the script without the model, find the output's scene cuts, cut it into chunks."""
    import vapoursynth as vs

    from vssavsr.plugin import scenes

    with scenes.props_only():
        node = vpy.load_output(script, script_args)
    try:
        check_y4m(node)
        fps = (node.fps.numerator, node.fps.denominator)
        frames = chunk_frames or planning.default_chunk_frames(fps)
        num_frames = node.num_frames
        cuts = planning.scan_cuts(node, progress=progress)
    finally:
        del node
        vs.clear_outputs()
    chunks = planning.plan_chunks(num_frames, cuts, frames)
    return planning.Plan(identity=identity, num_frames=num_frames, fps=fps, cuts=cuts, chunk_frames=frames,
                         chunks=chunks)


def prepare_work_folder(workdir: Path, identity: dict, restart: bool) -> planning.Plan | None:
    """The saved plan when it belongs to this encode; stale partial files removed."""
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in workdir.glob("*" + PARTIAL_SUFFIX):
        stale.unlink(missing_ok=True)
    for stale in workdir.glob("*.partial.log"):
        stale.unlink(missing_ok=True)
    saved = planning.Plan.load(workdir)
    if saved is None or saved.identity == identity:
        return saved
    if not restart:
        changed = sorted(k for k in identity if saved.identity.get(k) != identity.get(k))
        raise EncodeError(
            f"{workdir} holds chunks of an encode with another {', '.join(changed)}; run with --restart to "
            "discard them, or use the earlier settings to finish that encode"
        )
    say(f"--restart: discarding the chunks in {workdir}")
    for f in workdir.iterdir():
        if f.is_file():
            f.unlink()
    return None


def _main(args) -> int:
    out = Path(args.output).resolve()
    script = Path(args.script).resolve()
    if not script.is_file():
        raise EncodeError(f"script not found: {script}")
    if out.exists() and not args.overwrite:
        raise EncodeError(f"{out} exists; pass -y to replace it")
    script_args = vpy.parse_args(args.arg)
    from vssavsr.model.official import file_sha256

    identity = {
        "script": str(script), "script_sha256": file_sha256(script), "args": script_args,
        "ffmpeg_args": list(args.ffmpeg_args), "chunk_frames": args.chunk_frames,
    }
    workdir = work_folder(out)
    plan = prepare_work_folder(workdir, identity, args.restart)
    if plan is None:
        try:
            plan = make_plan(script, script_args, args.chunk_frames, identity, progress=not args.no_progress)
        except BaseException:
            if not any(workdir.iterdir()):
                workdir.rmdir()  # nothing to resume: leave no empty folder behind
            raise
        plan.save(workdir)
    done = [c for c in plan.chunks if (workdir / c.filename).is_file()]
    todo = [c for c in plan.chunks if c not in done]
    done_frames = sum(c.frames for c in done)
    say(f"{plan.num_frames} frames, {len(plan.cuts)} scene cut{'s' if len(plan.cuts) != 1 else ''}, "
        f"{len(plan.chunks)} chunks of at most {plan.chunk_frames} frames"
        + (f"; {len(done)} already done" if done else ""))
    if todo:
        from vssavsr.encode import cluster

        job = Job(script=str(script), args=script_args, cwd=os.getcwd(), workdir=str(workdir),
                  ffmpeg_args=tuple(args.ffmpeg_args), num_frames=plan.num_frames)
        try:
            started = cluster.start(args.address, cpus=args.cpus, verbose=args.verbose)
        except cluster.ClusterError as exc:
            raise EncodeError(str(exc)) from None
        try:
            shape = cluster.task_shape(args.workers)
            where = "a local Ray instance on 127.0.0.1" if started else f"the Ray cluster at {args.address or 'auto'}"
            say(f"rendering {len(todo)} chunks on {where}: {shape.describe()}")
            failures = cluster.run_chunks(job, todo, shape, retries=args.retries, done_frames=done_frames,
                                          total_frames=plan.num_frames, progress=not args.no_progress)
        finally:
            if started:
                cluster.stop()
        if failures:
            for c, exc in failures:
                say(f"chunk {c.start}-{c.end - 1} failed after {args.retries} retries: {_short(exc)}")
            say(f"{len(failures)} of {len(plan.chunks)} chunks failed; the others are kept in {workdir}: "
                "run the same command again to render the missing ones")
            return 1
    from vssavsr.encode.join import join_chunks

    join_chunks(workdir, plan.chunks, out)
    if not args.keep_chunks:
        shutil.rmtree(workdir, ignore_errors=True)
    say(f"wrote {out} ({plan.num_frames} frames)")
    return 0


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError keeps the task's exception here
    if cause is not None:
        text = f"{type(cause).__name__}: {cause}"
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        return _main(args)
    except (EncodeError, vpy.ScriptError, ValueError) as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted; run the same command again to continue (finished chunks are kept)")
        return 130
