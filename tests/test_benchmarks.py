"""The benchmarks still run and still compare like with like (no timing asserted here)."""

from __future__ import annotations

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
