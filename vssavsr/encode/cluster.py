"""Ray: a local instance on the loopback interface, or an existing cluster; chunk tasks; one progress bar.

Without an address the encoder starts Ray on this machine with every service bound to 127.0.0.1. Ray on
Linux otherwise registers the node under its network address even when asked for 127.0.0.1 (a cluster must
be reachable from other machines); ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` selects the single-machine
behaviour Ray uses on macOS and Windows, which keeps everything on the loopback. :func:`start` checks that
the node came up on 127.0.0.1 and stops otherwise. Usage statistics are off in that mode.

Tasks: one GPU each where the cluster has GPUs (a fresh worker process per chunk, as Ray does for GPU tasks,
so each chunk sees exactly the GPU Ray gave it); otherwise ``threads`` CPUs each, with torch and VapourSynth
limited to that many threads. Ray retries a failed task (an exception or a lost worker) ``retries`` times.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import Sequence

from vssavsr.encode.plan import Chunk
from vssavsr.encode.render import Job, render_chunk

LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
LOCAL_DEFAULTS = {"RAY_USAGE_STATS_ENABLED": "0"}
#: CPU cores per chunk task on CPU-only clusters (a guess that keeps memory bounded; not measured).
CPUS_PER_TASK = 4


class ClusterError(RuntimeError):
    pass


def import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError("vssavsr-encode needs Ray: pip install 'vssavsr[cluster]' (or pip install ray)") from None
    return ray


def start(address: str | None = None, cpus: int | None = None, verbose: bool = False) -> bool:
    """Connect to the cluster at ``address``, or start a local Ray on 127.0.0.1. Returns whether it started one."""
    if address is None:
        os.environ.update(LOCAL_ENV)
        for key, value in LOCAL_DEFAULTS.items():
            os.environ.setdefault(key, value)
    ray = import_ray()
    if ray.is_initialized():
        return False
    level = logging.INFO if verbose else logging.WARNING
    if address is None:
        try:  # in case ray was imported before the environment was set
            from ray._private import ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False
        except (ImportError, AttributeError):
            pass
        ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=verbose, logging_level=level)
        ip = node_addresses()
        if ip != {"127.0.0.1"}:
            ray.shutdown()
            raise ClusterError(f"the local Ray instance came up on {sorted(ip)}, not on 127.0.0.1; stopped it")
        return True
    try:
        ray.init(address=address, log_to_driver=verbose, logging_level=level)
    except Exception as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise ClusterError(
            f"cannot join the Ray cluster at {address}: {lines[-1] if lines else type(exc).__name__}. Check the address "
            "(the head's `ray start --head` prints it) and, where the cluster uses token authentication, run this "
            "with RAY_AUTH_MODE=token and the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
        ) from None
    return False


def stop() -> None:
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()


def node_addresses() -> set[str]:
    ray = import_ray()
    return {n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}


@dataclass(frozen=True)
class Shape:
    gpu: bool
    in_flight: int  # tasks submitted at once
    threads: int  # torch / VapourSynth threads per task

    def describe(self) -> str:
        kind = "1 GPU" if self.gpu else f"{self.threads} CPU{'s' if self.threads > 1 else ''}"
        return f"{self.in_flight} task{'s' if self.in_flight > 1 else ''} at a time, {kind} each"


def task_shape(workers: int | None) -> Shape:
    """How many chunk tasks run at once and what each gets, from the cluster's resources."""
    ray = import_ray()
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    gpu_nodes = [r for r in nodes if r.get("GPU", 0) >= 1]
    if gpu_nodes:
        gpus = sum(int(r["GPU"]) for r in gpu_nodes)
        threads = max(1, min(int(r.get("CPU", 1)) // int(r["GPU"]) for r in gpu_nodes))
        return Shape(True, min(workers or gpus, gpus), threads)
    cpus = sum(int(r.get("CPU", 0)) for r in nodes)
    smallest = min((int(r.get("CPU", 0)) for r in nodes if r.get("CPU", 0) >= 1), default=1)
    workers = workers or max(1, cpus // CPUS_PER_TASK)
    threads = max(1, min(smallest, cpus // workers))
    return Shape(False, workers, threads)


class _Board:
    """Frames rendered so far per chunk (a retried chunk starts again from zero)."""

    def __init__(self):
        self.done: dict[int, int] = {}

    def set(self, start: int, frames: int) -> None:
        self.done[start] = frames

    def total(self) -> int:
        return sum(self.done.values())


def _chunk_task(job: Job, start: int, end: int, board) -> dict:
    return render_chunk(job, Chunk(start, end), report=lambda done: board.set.remote(start, done))


def run_chunks(job: Job, chunks: Sequence[Chunk], shape: Shape, retries: int = 3, done_frames: int = 0,
               total_frames: int | None = None, progress: bool = True) -> list[tuple[Chunk, BaseException]]:
    """Render ``chunks`` as Ray tasks; returns the chunks that failed after their retries, with the error."""
    ray = import_ray()
    options = {"max_retries": retries, "retry_exceptions": True}
    if shape.gpu:
        task = ray.remote(num_gpus=1, num_cpus=1, max_calls=1, **options)(_chunk_task)
    else:
        task = ray.remote(num_cpus=shape.threads, **options)(_chunk_task)
    job = replace(job, threads=shape.threads)
    board = ray.remote(num_cpus=0)(_Board).remote()
    bar = None
    if progress:
        from tqdm import tqdm

        total = total_frames if total_frames is not None else done_frames + sum(c.frames for c in chunks)
        bar = tqdm(total=total, initial=done_frames, unit="fr", desc="encode", dynamic_ncols=True, smoothing=0.1)
    pending = list(chunks)
    running: dict = {}
    finished_frames = 0
    failures: list[tuple[Chunk, BaseException]] = []
    try:
        while pending or running:
            while pending and len(running) < shape.in_flight:
                c = pending.pop(0)
                running[task.remote(job, c.start, c.end, board)] = c
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                c = running.pop(ref)
                try:
                    ray.get(ref)
                    finished_frames += c.frames
                except Exception as exc:  # after Ray's retries
                    failures.append((c, exc))
                    board.set.remote(c.start, 0)
            if bar is not None:
                live = ray.get(board.total.remote())
                bar.n = done_frames + max(live, finished_frames)
                bar.refresh()
    except BaseException:
        for ref in running:
            ray.cancel(ref, force=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return failures
