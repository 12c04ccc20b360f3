"""``driving-detect batch --ray-address`` on a real two-node Ray cluster on this machine (``ray start --head`` and a
second ``ray start --address``, on free ports, node IP 127.0.0.1, token auth of the test's own), torn down after:
the clips are processed and a worker killed mid-file has its file retried to completion."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, write_video
from tests.test_fleet import MODEL, free_port, jsonl, ray_auth_env, reference, seeded_weights

RAY = Path(sys.executable).parent / "ray"
NODE_FLAGS = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=100000000",
              "--disable-usage-stats"]


def node_ports() -> list[str]:
    """Every port a node would otherwise take from a fixed default, free now (two nodes share this machine), each
    one distinct and outside the workers' range: Ray refuses to start on an overlap."""
    low = free_port()
    taken = set(range(low, low + 41))

    def distinct() -> int:
        while (port := free_port()) in taken:
            pass
        taken.add(port)
        return port

    return [f"--node-manager-port={distinct()}", f"--object-manager-port={distinct()}",
            f"--dashboard-agent-listen-port={distinct()}", f"--dashboard-agent-grpc-port={distinct()}",
            f"--metrics-export-port={distinct()}", f"--runtime-env-agent-port={distinct()}",
            f"--min-worker-port={low}", f"--max-worker-port={low + 40}"]


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def process_groups_alive(groups: set[int]) -> list[str]:
    """Live (not zombie) processes of the given process groups: what a teardown left behind."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in groups:
            alive.append(stat.parent.name)
    return alive


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """(address, environment for a driver) of a head and a second node, 1 CPU each; every process of both nodes
    (raylets, GCS, workers: they stay in the node's process group) is ended after the module."""
    pytest.importorskip("ray", reason="the fleet extra (pip install -e '.[fleet]') is not installed")
    temp = Path(tempfile.mkdtemp(prefix="rayc", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, **ray_auth_env(temp), "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    port = free_port()
    address = f"127.0.0.1:{port}"
    nodes: list[subprocess.Popen] = []

    def start(name: str, *flags: str) -> Path:
        log = temp / f"{name}.log"
        nodes.append(subprocess.Popen([str(RAY), "start", *flags, *NODE_FLAGS, *node_ports(), f"--temp-dir={temp}"],
                                      env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True))
        return log

    try:
        head = start("head", "--head", f"--port={port}", "--include-dashboard=false")
        wait_for(lambda: "Ray runtime started" in head.read_text() or nodes[0].poll() is not None, 60, "the head")
        assert nodes[0].poll() is None, head.read_text()[-2000:]
        second = start("node", f"--address={address}")
        wait_for(lambda: "Ray runtime started" in second.read_text() or nodes[1].poll() is not None, 60, "node 2")
        assert nodes[1].poll() is None, second.read_text()[-2000:]
        yield address, env
    finally:
        groups = {node.pid for node in nodes}
        for node in reversed(nodes):
            with_signal(node.pid, signal.SIGTERM)
        deadline = time.time() + 3  # a grace period for a clean exit, then SIGKILL
        while process_groups_alive(groups) and time.time() < deadline:
            time.sleep(0.2)
        for group in groups:
            with_signal(group, signal.SIGKILL)
        for node in nodes:
            node.wait(10)
        time.sleep(0.5)
        assert process_groups_alive(groups) == [], "a Ray process of the test cluster outlived its teardown"


def with_signal(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass


CLIPS = {"a.avi": 8, "b.avi": 10, "long.avi": 150}


@pytest.fixture(scope="module")
def killed_run(cluster, tmp_path_factory):
    """The batch over three clips via ``--ray-address``; the worker on ``long.avi`` is killed (SIGKILL) once it has
    written a few frames. -> (exit code, output folder, killed pid, references, stderr)."""
    address, env = cluster
    tmp = tmp_path_factory.mktemp("cluster")
    model = [*MODEL, f"model.weights={seeded_weights(tmp / 'seed0.pt')}"]
    (tmp / "in").mkdir()
    refs = {name: reference(write_video(tmp / "in" / name, frames=n), tmp, model) for name, n in CLIPS.items()}
    out = tmp / "out"
    driver = subprocess.Popen([sys.executable, "-m", "commands.main", "batch", str(tmp / "in"), "--out", str(out), "--ray-address",
                               address, "--quiet", *model, "batch.threads=1", "batch.max_retries=2"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def partial_with_frames() -> Path | None:
        for folder in (out / "long.avi").glob(".partial-*"):
            lines = folder / "detections.jsonl"
            if lines.exists() and len(lines.read_text().splitlines()) >= 5:
                return folder
        return None

    try:
        wait_for(lambda: partial_with_frames() is not None or driver.poll() is not None, 120, "long.avi to start")
        assert driver.poll() is None, driver.communicate()
        pid = int(partial_with_frames().name.rsplit("-", 1)[1])
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    return driver.returncode, out, pid, refs, stdout + stderr


def test_the_cluster_processes_every_clip_like_run_stream(killed_run):
    rc, out, _, refs, output = killed_run
    assert rc == 0, output[-3000:]
    for name, ref in refs.items():
        assert (out / name / "detections.jsonl").read_text() == ref.read_text()
        assert json.loads((out / name / "benchmark.json").read_text())["frames"] == CLIPS[name]
        assert not list((out / name).glob(".partial-*"))
    rows = json.loads((out / "summary.json").read_text())["files"]
    assert {row["file"]: row["state"] for row in rows} == dict.fromkeys(CLIPS, "done")
    assert len({row["worker"] for row in rows}) >= 2  # both nodes' workers took files


def test_a_worker_killed_mid_file_has_the_file_retried_to_completion(killed_run):
    rc, out, pid, refs, output = killed_run
    assert rc == 0, output[-3000:]
    states = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    long_states = [s for s in states if s["file"] == "long.avi"]
    assert [s["state"] for s in long_states] == ["running", "done"]  # Ray retried it: no second hand-out
    done = long_states[-1]
    assert done["retries"] >= 1 and not done["worker"].endswith(f"-{pid}")
    assert [line["frame"] for line in jsonl(out / "long.avi" / "detections.jsonl")] == list(range(CLIPS["long.avi"]))
