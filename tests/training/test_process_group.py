"""The process group of a run is created with riskdpo's timeout (`PROCESS_GROUP_TIMEOUT`, sized
for rank 0's final merge and save), and that timeout is the one collectives obey: two real
CPU processes (torchrun, gloo) with a short configured timeout, one late to a barrier."""

import os
import subprocess
import sys
import textwrap

from helpers import SUBPROCESS_ENV

SCRIPT = textwrap.dedent("""
    import sys, time
    from datetime import timedelta
    import torch.distributed as dist
    from riskdpo.training.processes import group_timeout, start_processes

    state = start_processes(timedelta(seconds=float(sys.argv[1])))
    print(f"rank {state.process_index} timeout {group_timeout().total_seconds()}", flush=True)
    if state.process_index == 0:
        time.sleep(float(sys.argv[2]))  # rank 0 busy (as with the final save) ...
    start = time.perf_counter()
    try:
        dist.barrier()  # ... while rank 1 waits for it here
        print(f"rank {state.process_index} passed the barrier", flush=True)
    except RuntimeError as error:
        print(f"rank {state.process_index} timed out after {time.perf_counter() - start:.1f} s", flush=True)
""")


def run_two(tmp_path, timeout_s: float, late_s: float) -> str:
    script = tmp_path / "late_rank.py"
    script.write_text(SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(timeout_s), str(late_s)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, **SUBPROCESS_ENV})
    return result.stdout + result.stderr


def test_the_configured_timeout_reaches_the_process_group(tmp_path):
    output = run_two(tmp_path, timeout_s=2, late_s=8)
    assert "rank 0 timeout 2.0" in output and "rank 1 timeout 2.0" in output
    # rank 1 gives up after the configured 2 s, long before rank 0 arrives
    line = next(line for line in output.splitlines() if line.startswith("rank 1 timed out"))
    assert float(line.split()[5]) < 6, output


def test_a_wait_within_the_timeout_passes(tmp_path):
    output = run_two(tmp_path, timeout_s=30, late_s=3)
    assert "rank 1 passed the barrier" in output and "rank 0 passed the barrier" in output, output
