"""The Binder configuration (binder/) is accepted by repo2docker and matches requirements.txt.

repo2docker's ``--no-build`` mode needs neither Docker nor the network: it reads
``binder/``, prints the Dockerfile it would build, and fails on an invalid
configuration (a bad ``runtime.txt``, for instance).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
LOCAL = {".", "-e ."}  # the course itself; pip runs from the repository root


def _requirement_lines(path: Path) -> list[str]:
    """Non-empty lines of a requirements file, comments stripped."""
    lines = (re.sub(r"(^|\s)#.*", "", line).strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _pins(path: Path) -> dict[str, Version]:
    """``{name: version}`` of the ``name==version`` lines of a requirements file."""
    pins = {}
    for line in _requirement_lines(path):
        if line.startswith("-") or line in LOCAL:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{path.name}: {line!r} is not pinned"
        pins[req.name.lower()] = Version(specs[0].version)
    return pins


def test_repo2docker_accepts_the_binder_configuration() -> None:
    pytest.importorskip("repo2docker", reason="pip install -r requirements-dev.txt")
    # --user-id/--user-name as on mybinder.org (the default is the user running the test)
    cmd = [sys.executable, "-m", "repo2docker", "--no-build", "--debug"]
    cmd += ["--user-id", "1000", "--user-name", "jovyan", str(ROOT)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in out, out
    # the course is installed from the repository, so the whole of it is copied before pip runs
    copy_repo = out.index("COPY --chown=1000:1000 src/ ${REPO_DIR}/")
    assert copy_repo < out.index('-r "binder/requirements.txt"'), out
    assert "python=3.11" in out, out


def test_runtime_is_python_3_11() -> None:
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"


def test_binder_pins_agree_with_requirements_txt() -> None:
    runtime, binder = _pins(ROOT / "requirements.txt"), _pins(BINDER / "requirements.txt")
    missing = sorted(set(runtime) - set(binder))
    assert not missing, f"binder/requirements.txt lacks {missing}"
    for name, version in runtime.items():
        # torch comes from PyTorch's CPU-only index there: same version, "+cpu" local tag
        allowed = {version, Version(f"{version.public}+cpu")} if name == "torch" else {version}
        assert binder[name] in allowed, (
            f"{name}: requirements.txt pins {version}, binder/requirements.txt {binder[name]}"
        )


def test_binder_takes_torch_from_the_cpu_only_index() -> None:
    lines = _requirement_lines(BINDER / "requirements.txt")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert _pins(BINDER / "requirements.txt")["torch"].local == "cpu"


def test_binder_pins_the_notebook_release_that_goes_with_jupyterlab() -> None:
    # repo2docker's base environment ships an older `notebook` that needs an older
    # jupyterlab; notebook 7.N is the release that requires jupyterlab 4.N.
    pins = _pins(BINDER / "requirements.txt")
    assert "notebook" in pins, "pin notebook in binder/requirements.txt (7.N for jupyterlab 4.N)"
    assert pins["notebook"].major == 7 and pins["jupyterlab"].major == 4
    assert pins["notebook"].minor == pins["jupyterlab"].minor, (
        pins["notebook"],
        pins["jupyterlab"],
    )


def test_binder_installs_the_course() -> None:
    lines = _requirement_lines(BINDER / "requirements.txt")
    assert LOCAL & set(lines), "binder/requirements.txt must install the course: a `.` line"
    assert ".." not in lines and "-e .." not in lines  # pip resolves paths from its working dir
