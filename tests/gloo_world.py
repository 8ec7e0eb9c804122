"""Run a gloo world of processes for the distributed tests (each test file runs as a script
in a subprocess and calls ``run_world``): ``worker(rank, world, port, out_dir)`` writes
``out_dir/rank<r>.json``; ``run_world`` returns each rank's document, in rank order."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_world(
    worker: Callable[[int, int, int, str], None], world: int, out_dir: Path, timeout_s: float
) -> list[Any]:
    """Start ``world`` ranks (fork where available: the caller imports what every rank needs
    first, once), wait at most ``timeout_s``, killing what is left, and read their output."""
    import torch.multiprocessing as mp

    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.start_processes(
        worker, args=(world, free_port(), str(out_dir)), nprocs=world, join=False,
        start_method=method,
    )  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while not ctx.join(timeout=2):
        if time.monotonic() > deadline:
            for proc in ctx.processes:
                if proc.is_alive():
                    proc.kill()
            raise TimeoutError(f"world {world}: ranks did not finish in {timeout_s} s")
    return [json.loads(Path(out_dir, f"rank{r}.json").read_text()) for r in range(world)]


RESULTS = "RESULTS "


def print_results(rows: Any) -> None:
    """What a test file run as a script (``results_of``) hands back: one JSON line."""
    print(RESULTS + json.dumps(rows))


def results_of(script: str, *args: str, needs: str, timeout_s: float) -> Any:
    """Run the test file ``script`` as a script in a subprocess (its ``main`` runs the gloo
    worlds and calls ``print_results``) and return what it printed. Skips where
    torch.distributed with gloo, or the module ``needs``, is not available."""
    import os
    import subprocess
    import sys

    import pytest

    pytest.importorskip(needs)
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, timeout=timeout_s,
        env=env, check=False,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULTS)]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads(lines[-1].removeprefix(RESULTS))
