"""The benchmarks still run and still compare like with like (no timing asserted here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def test_value_iteration_benchmark_quick_run_agrees() -> None:
    """Every implementation in the benchmark reaches the same values as rlcourse."""
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "value_iteration.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    errors = [float(x) for x in re.findall(r"max\|ΔV\| vs rlcourse (\S+)", out)]
    assert len(errors) >= 6, out
    assert max(errors) < 1e-9, out
    assert "pymdptoolbox" in out and "python loop" in out, out
    assert "scipy CSR" in out and "per sweep" in out, out  # the large sparse MDP's table


def test_env_throughput_benchmark_runs() -> None:
    """The throughput table has a positive rate for every implementation it times."""
    out = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "env_throughput.py"),
            "--max-envs",
            "256",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    rows = {
        line[:32].strip(): [float(x) for x in line[32:].split()]
        for line in out.splitlines()
        if line.startswith(("gymnasium", "rlcourse"))
    }
    assert set(rows) >= {
        "gymnasium single env",
        "gymnasium CartPoleVectorEnv",
        "rlcourse torch, cpu, float64",
        "rlcourse torch, cpu, float32",
    }, out
    assert all(rates and min(rates) > 0 for rates in rows.values()), out
    assert len(rows["rlcourse torch, cpu, float64"]) == 3, out  # N = 1, 16, 256


def test_cartpole_benchmark_worker_reports_a_held_out_solve() -> None:
    """One rlcourse run of the CartPole benchmark (PPO, seed 0) reports a confirmed solve and
    the held-out score of the agent handed back, under the course's definition."""
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "cartpole.py"), "--worker", "rlcourse", "ppo", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT ") :])
    assert result["confirmed"] and result["solved"], result
    assert result["held_out"] >= 475 and 0 < result["time"] <= result["wall"], result
    assert result["steps"] > 0 and "confirmed solve" in result["selection"], result
