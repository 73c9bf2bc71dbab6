"""The notebooks follow the course's conventions and were stored from an in-order run.

nbval (run by the same `pytest`) re-executes every cell and compares outputs; these
tests check what nbval does not: that the stored outputs came from one top-to-bottom
run of a fresh kernel, and that each chapter has the parts every chapter promises.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REEXECUTE = "re-execute it with `python -m rlcourse.execute {path}`"


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def _text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(c.source for c in nb.cells)


def test_chapters_exist() -> None:
    """Chapters 0-2 are there, numbered NN_topic.ipynb."""
    names = [p.stem for p in NOTEBOOKS]
    assert names[:3] == ["00_welcome", "01_mdp", "02_dynamic_programming"], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_come_from_an_in_order_run(path: Path) -> None:
    """Execution counts are exactly 1, 2, 3, ... and no stored output is an error."""
    nb = nbformat.read(path, as_version=4)
    rel = path.relative_to(path.parent.parent)
    counts = [c.execution_count for c in _code_cells(nb)]
    expected = list(range(1, len(counts) + 1))
    assert counts == expected, (
        f"{rel} was not executed in order from a fresh kernel (execution counts {counts}); "
        + REEXECUTE.format(path=rel)
    )
    errors = [o for c in _code_cells(nb) for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{rel} stores an error output; fix it and " + REEXECUTE.format(path=rel)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_saved_widget_state(path: Path) -> None:
    """Widget state is not stored (it bloats diffs and JupyterLab does not use it)."""
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state; " + REEXECUTE.format(
        path=f"notebooks/{path.name}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS[1:], ids=lambda p: p.stem)
def test_chapter_has_every_part(path: Path) -> None:
    """Goals, math, exercises with checkers, a common-mistakes box and a summary."""
    nb = nbformat.read(path, as_version=4)
    text = _text(nb)
    for part in ("Learning goals", "Common mistakes", "## Summary", "## Exercises", "$$"):
        assert part in text, f"{path.name} has no '{part}'"
    exercises = [c.source for c in _code_cells(nb) if "# BEGIN SOLUTION" in c.source]
    assert len(exercises) >= 2, f"{path.name} has fewer than two exercises with solution markers"
    for source in exercises:
        assert source.count("# BEGIN SOLUTION") == source.count("# END SOLUTION"), source
        after = source.rsplit("# END SOLUTION", 1)[1]
        assert re.search(r"checks\.check_\w+\(", after), (
            f"{path.name}: an exercise has no checker call after its solution:\n{source}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_ignored_outputs_are_few(path: Path) -> None:
    """At most two cells per notebook are exempt from output comparison."""
    nb = nbformat.read(path, as_version=4)
    ignored = [c for c in nb.cells if "nbval-ignore-output" in c.metadata.get("tags", [])]
    assert len(ignored) <= 2, f"{path.name} ignores the output of {len(ignored)} cells"
