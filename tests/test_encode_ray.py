"""vssavsr-encode on a local Ray instance (2 CPUs, loopback only): the chunked encode of a clip with a
scene cut is frame-identical to `vspipe | ffmpeg` of the same script, a task that fails once is retried,
a rerun after a failed run renders only the missing chunks, and Ray listens on 127.0.0.1 only.

The clip: 25 frames of the bundled sample (a real cut after 10 of them), 64 x 28 upscaled x2 by a tiny
random-weight model. Torch runs 1 thread in the script, in every process alike: with another thread count
float rounding may move a rare 8-bit value by 1 (measured: 1 value of 806,400 at 1 vs 2 threads on 75 frames).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WIDTH, HEIGHT = 128, 56  # output size (YUV420P8)

pytest.importorskip("ray", reason="Ray is not installed: pip install '.[cluster]'")

SCRIPT = textwrap.dedent(
    """
    import os
    import torch
    import vapoursynth as vs
    from vapoursynth import core
    import vssavsr
    from vssavsr.encode import current_chunk

    torch.set_num_threads(1)
    clip = core.bs.VideoSource(vssavsr.sample_clip_path())[20:45]   # a shot change between 9 and 10
    clip = core.resize.Bicubic(clip, 64, 28)
    clip = core.savsr.Upscale(clip, 2, checkpoint=ckpt)

    # Test hooks: which chunks this process renders, and failures on demand (a frame that raises).
    chunk = current_chunk()
    if chunk is not None:
        with open(os.environ["ENCODE_TEST_LOG"], "a") as f:
            f.write(f"{chunk[0]} {chunk[1]}\\n")
        fail = os.environ.get("ENCODE_TEST_FAIL", "")
        marker = os.environ.get("ENCODE_TEST_MARKER", "")
        if chunk[0] == 10 and (fail == "always" or (fail == "once" and not os.path.exists(marker))):
            if fail == "once":
                open(marker, "w").close()

            def boom(n, f):
                if n == 13:
                    raise RuntimeError("injected failure at frame 13")
                return f

            clip = core.std.ModifyFrame(clip, clip, boom)
    clip.set_output()
    """
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not (Path(vs.get_plugin_dir()) / "libvssavsr.so").is_file():
        pytest.skip(f"the native plugin is not installed in {vs.get_plugin_dir()}: run 'pip install .' first")
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found (apt-get install ffmpeg)")
    e = dict(os.environ)
    e["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg"))
    e["OMP_NUM_THREADS"] = "1"
    e.pop("ENCODE_TEST_FAIL", None)
    subprocess.run([str(BIN / "vapoursynth"), "config"], env=e, check=True, capture_output=True, timeout=60)
    return e


@pytest.fixture(scope="module")
def case(env, tmp_path_factory, tiny_checkpoint):
    """The script, and its frames rendered by vspipe | ffmpeg (the reference)."""
    folder = tmp_path_factory.mktemp("encode")
    script = folder / "up.vpy"
    script.write_text(SCRIPT)
    log = folder / "vspipe.log"
    ref = folder / "ref.mkv"
    e = dict(env, ENCODE_TEST_LOG=str(log))
    pipe = subprocess.Popen([str(BIN / "vspipe"), "-a", f"ckpt={tiny_checkpoint}", "-c", "y4m", str(script), "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
    enc = subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "yuv4mpegpipe", "-i", "-", "-c:v", "ffv1", str(ref)],
                         stdin=pipe.stdout, capture_output=True, timeout=300)
    pipe.stdout.close()
    assert pipe.wait(timeout=300) == 0, pipe.stderr.read().decode()
    assert enc.returncode == 0, enc.stderr.decode()
    frames = decode(ref)
    assert frames.shape[0] == 25 and not log.exists()  # vspipe renders outside any chunk
    return {"script": script, "ckpt": str(tiny_checkpoint), "ref": frames}


def decode(path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, WIDTH * HEIGHT * 3 // 2)


def encode(env, case, out, log, *extra, fail="", marker=None, timeout=420):
    e = dict(env, ENCODE_TEST_LOG=str(log), ENCODE_TEST_FAIL=fail, ENCODE_TEST_MARKER=str(marker or ""))
    cmd = [sys.executable, "-m", "vssavsr.encode", str(case["script"]), "-o", str(out), "--cpus", "2", "--workers",
           "2", "--chunk-frames", "8", "--no-progress", "-a", f"ckpt={case['ckpt']}", *extra]
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=timeout, cwd=str(out.parent))


def rendered(log) -> list[tuple[int, int]]:
    return sorted(tuple(int(v) for v in line.split()) for line in Path(log).read_text().splitlines())


# Scenes 0-9 and 10-24; at most 8 frames a chunk: 0-4, 5-9 | 10-17, 18-24 (the cut is a chunk boundary).
CHUNKS = [(0, 5), (5, 10), (10, 18), (18, 25)]


def test_chunked_encode_is_identical_to_vspipe(env, case, tmp_path):
    out, log = tmp_path / "out.mkv", tmp_path / "chunks.log"
    res = encode(env, case, out, log, "--keep-chunks")
    assert res.returncode == 0, res.stderr
    assert "25 frames, 1 scene cut, 4 chunks" in res.stderr and "local Ray instance on 127.0.0.1" in res.stderr
    got = decode(out)
    assert got.shape == case["ref"].shape and np.array_equal(got, case["ref"])
    assert rendered(log) == CHUNKS
    plan = json.loads((tmp_path / "out.mkv.chunks" / "plan.json").read_text())
    assert plan["cuts"] == [10] and [tuple(c) for c in plan["chunks"]] == CHUNKS
    # A rerun of a finished encode renders nothing (and refuses to overwrite without -y).
    again = encode(env, case, out, log)
    assert again.returncode != 0 and "-y" in again.stderr
    again = encode(env, case, out, log, "-y")
    assert again.returncode == 0, again.stderr
    assert rendered(log) == CHUNKS and np.array_equal(decode(out), case["ref"])
    assert not (tmp_path / "out.mkv.chunks").exists()


def test_a_task_that_fails_once_is_retried(env, case, tmp_path):
    out, log, marker = tmp_path / "out.mkv", tmp_path / "chunks.log", tmp_path / "failed-once"
    res = encode(env, case, out, log, fail="once", marker=marker)
    assert res.returncode == 0, res.stderr
    assert marker.exists()  # the failure happened
    assert rendered(log) == sorted(CHUNKS + [(10, 18)])  # chunk 10-17 ran twice
    assert np.array_equal(decode(out), case["ref"])


@pytest.mark.slow
def test_a_rerun_after_a_failed_run_renders_only_the_missing_chunks(env, case, tmp_path):
    out, log = tmp_path / "out.mkv", tmp_path / "chunks.log"
    first = encode(env, case, out, log, "--retries", "1", fail="always")
    assert first.returncode == 1
    assert "chunk 10-17 failed" in first.stderr and "injected failure at frame 13" in first.stderr
    work = tmp_path / "out.mkv.chunks"
    assert not out.exists()
    assert sorted(p.name for p in work.glob("chunk-*")) == [
        "chunk-00000000-00000005.mkv", "chunk-00000005-00000010.mkv", "chunk-00000018-00000025.mkv"]
    assert not list(work.glob("*.partial*"))  # the failed attempts left nothing half-written
    log.unlink()
    second = encode(env, case, out, log)
    assert second.returncode == 0, second.stderr
    assert "3 already done" in second.stderr
    assert rendered(log) == [(10, 18)]
    assert np.array_equal(decode(out), case["ref"])


LOOPBACK_PROBE = textwrap.dedent(
    """
    import json, os
    from vssavsr.encode import cluster

    def children(pid):
        out = set()
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                if ppid == pid:
                    out.add(int(p))
        return out

    def tree(pid):
        seen, todo = set(), [pid]
        while todo:
            p = todo.pop()
            if p not in seen:
                seen.add(p)
                todo.extend(children(p))
        return seen

    def sockets(pids):
        inodes = set()
        for pid in pids:
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
            except OSError:
                pass
        found = []
        for table in ("tcp", "tcp6", "udp", "udp6"):
            try:
                lines = open(f"/proc/net/{table}").read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                f = line.split()
                if f[9] in inodes and (table.startswith("udp") or f[3] == "0A"):  # 0A: LISTEN
                    found.append((table, f[1]))
        return found

    assert cluster.start(None, cpus=2) is True
    import ray

    @ray.remote(num_cpus=1)
    def pid():
        return os.getpid()

    ray.get([pid.remote() for _ in range(2)])
    result = {"nodes": sorted(cluster.node_addresses()), "gcs": ray.get_runtime_context().gcs_address,
              "sockets": sockets(tree(os.getpid()))}
    cluster.stop()
    print(json.dumps(result))
    """
)


def _loopback(table: str, hexaddr: str) -> bool:
    addr = hexaddr.split(":")[0]
    if table.endswith("6"):
        if addr == "0" * 31 + "1" or addr.lower() == "00000000000000000000000001000000":  # ::1
            return True
        if addr.upper().startswith("0000000000000000FFFF0000"):  # ::ffff:a.b.c.d
            return int(addr[-2:], 16) == 127
        return False
    return int(addr[-2:], 16) == 127  # little-endian IPv4: first octet last


def test_local_ray_listens_on_the_loopback_only(env):
    res = subprocess.run([sys.executable, "-c", LOOPBACK_PROBE], env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["nodes"] == ["127.0.0.1"] and info["gcs"].startswith("127.0.0.1:")
    assert len(info["sockets"]) >= 3  # the GCS, the raylet and the workers were seen
    assert all(_loopback(t, a) for t, a in info["sockets"]), info["sockets"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_joins_a_running_cluster_with_address(env, case, tmp_path):
    """`ray start --head` (here on 127.0.0.1, token authentication on), then `vssavsr-encode --address`."""
    import secrets
    import tempfile
    import time

    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    out, log = tmp_path / "out.mkv", tmp_path / "chunks.log"
    # The workers run with the environment of `ray start`, not the encoder's: the script's test hooks go there.
    e = dict(env, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
             RAY_AUTH_TOKEN=secrets.token_hex(16), ENCODE_TEST_LOG=str(log), ENCODE_TEST_FAIL="")
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
         "--num-cpus", "2", "--include-dashboard=false", "--temp-dir", temp],
        env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and head.poll() is None and not _listening(port):
            time.sleep(0.5)
        time.sleep(2)  # the GCS listens first; the raylet registers just after
        assert head.poll() is None, head.stdout.read()
        res = encode(dict(e), case, out, log, "--address", f"127.0.0.1:{port}", "--workers", "2")
        assert res.returncode == 0, res.stderr
        assert f"Ray cluster at 127.0.0.1:{port}" in res.stderr
        assert np.array_equal(decode(out), case["ref"]) and rendered(log) == CHUNKS
    finally:
        head.terminate()  # `ray start --block` stops the processes it started
        head.wait(timeout=60)
        shutil.rmtree(temp, ignore_errors=True)
