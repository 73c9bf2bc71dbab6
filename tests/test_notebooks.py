"""The notebooks follow the course's conventions and were stored from an in-order run.

nbval (run by the same `pytest`) re-executes every cell and compares outputs; these
tests check what nbval does not: that the stored outputs came from one top-to-bottom
run of a fresh kernel, that they read right where the notebook is only viewed (GitHub,
nbviewer: no widget view without its state, no progress bar below 100%), and that each
chapter has the parts every chapter promises. The last tests check the mechanism that
keeps the stored widgets readable (``rlcourse.execute`` stores them as text).
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import nbformat
import pytest

from rlcourse.execute import WIDGET_VIEW, execute_notebook, store_widgets_as_text

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REEXECUTE = "re-execute it with `python -m rlcourse.execute {path}`"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# a tqdm bar's text: "desc: 30%|███       | 30208/99840 [00:02<00:04, 14.3kstep/s]"
PROGRESS_BAR = re.compile(r"(\d{1,3})%\|[^|\n]*\|\s*([\d.]+[kMGTPEZY]?)/([\d.]+[kMGTPEZY]?)")


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


#: the most a stored notebook may take (its figures and episode animations included)
MAX_NOTEBOOK_BYTES = 3_000_000


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_notebook_is_small(path: Path) -> None:
    """Under 3 MB each, so that it opens fast on GitHub, nbviewer and Binder."""
    size = path.stat().st_size
    assert size < MAX_NOTEBOOK_BYTES, (
        f"{path.name} takes {size / 1e6:.2f} MB, over {MAX_NOTEBOOK_BYTES / 1e6:g} MB: fewer or "
        "smaller figures, or fewer frames in its episode animations (max_frames)"
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


def _output_texts(cell: nbformat.NotebookNode) -> list[str]:
    """The text a reader sees in ``cell``'s outputs: text/plain, and streams as a terminal
    shows them (each line's text after its last carriage return)."""
    texts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            texts.append("\n".join(line.rsplit("\r", 1)[-1] for line in out.text.split("\n")))
        else:
            texts.append(str(out.get("data", {}).get("text/plain", "")))
    return texts


def unfinished_progress_bars(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(cell index, bar) of every progress bar in ``nb``'s outputs that is below 100%."""
    found = []
    for i, cell in enumerate(nb.cells):
        for text in _output_texts(cell):
            for m in PROGRESS_BAR.finditer(text):
                percent, n, total = int(m.group(1)), m.group(2), m.group(3)
                if percent < 100 or n != total:
                    found.append((i, m.group(0)))
    return found


def widget_views_without_state(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(cell index, text shown instead) of every widget view whose state ``nb`` lacks."""
    widgets = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is not None and view.get("model_id") not in widgets:
                found.append((i, str(out.data.get("text/plain", ""))))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_widget_output_without_its_state(path: Path) -> None:
    """A widget view needs its state to be drawn: without it GitHub, nbviewer and a freshly
    opened notebook show the text the view was created with (a tqdm bar: "0%", as if
    training never ran). `rlcourse.execute` stores every widget view as its text."""
    nb = nbformat.read(path, as_version=4)
    found = widget_views_without_state(nb)
    assert not found, (
        f"{path.name} stores widget views without their state, shown as "
        + "; ".join(f"cell {i}: {text!r}" for i, text in found)
        + "; "
        + REEXECUTE.format(path=f"notebooks/{path.name}")
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_progress_bar_stuck_below_100_percent(path: Path) -> None:
    """A stored progress bar is finished: a bar below 100% reads as training that did not
    run or did not end (an early stop must finish its bar)."""
    nb = nbformat.read(path, as_version=4)
    found = unfinished_progress_bars(nb)
    assert not found, (
        f"{path.name} stores progress bars below 100%: "
        + "; ".join(f"cell {i}: {bar!r}" for i, bar in found)
        + " (read as training that never ran or broke off); "
        + REEXECUTE.format(path=f"notebooks/{path.name}")
        + ", which stores each bar's final text (code that stops early must finish its bar)"
    )


# ---------------------------------------------------------------------------
# the mechanism: rlcourse.execute stores widget views as text, bars as they ended


def _sanitize(text: str) -> str:
    """``text`` as nbval sees it through the course's nbval_sanitize.cfg."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "nbval_sanitize.cfg", encoding="utf-8")
    for section in config.sections():
        text = re.sub(config[section]["regex"], config[section]["replace"], text)
    return text


def _bar_state(n: int, total: int) -> dict[str, dict]:
    """The last widget state of a tqdm.notebook bar ("box" its HBox), as nbclient keeps it."""
    percent = f"{100 * n // total:3d}%".replace(" ", "\u2007")
    return {
        "box": {
            "_model_name": "HBoxModel",
            "children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"],
        },
        "l": {"_model_name": "HTMLModel", "value": percent},
        "p": {"_model_name": "FloatProgressModel", "min": 0, "max": total, "value": n},
        "r": {
            "_model_name": "HTMLModel",
            "value": f"\u2007{n}/{total}\u2007[00:02&lt;00:04,\u2007142.3step/s,\u2007eval=12]",
        },
    }


def _widget_output(model_id: str, text: str) -> nbformat.NotebookNode:
    view = {"model_id": model_id, "version_major": 2, "version_minor": 0}
    return nbformat.v4.new_output("display_data", {WIDGET_VIEW: view, "text/plain": text})


def test_store_widgets_as_text_keeps_each_bars_final_text() -> None:
    state = _bar_state(30, 100)
    other = {"s": {"_model_name": "IntSliderModel", "value": 3}}
    cell = nbformat.v4.new_code_cell("...")
    cell.outputs = [
        _widget_output("box", "  0%|          | 0/100 [00:00<?, ?step/s]"),
        _widget_output("s", "IntSlider(value=3)"),
        nbformat.v4.new_output("stream", name="stdout", text="done\n"),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    store_widgets_as_text(nb, {**state, **other})
    assert [o.get("data") for o in cell.outputs[:2]] == [
        {"text/plain": " 30%|███       | 30/100"},  # no elapsed time, rate or postfix
        {"text/plain": "IntSlider(value=3)"},
    ]
    assert cell.outputs[2].text == "done\n"
    assert not widget_views_without_state(nb)
    assert unfinished_progress_bars(nb) == [(0, "30%|███       | 30/100")]


@pytest.mark.parametrize(
    ("text", "unfinished"),
    [
        ("100%|██████████| 99840/99840", False),
        ("solve: 100%|██████████| 30.2k/30.2k", False),
        ("  0%|          | 0/100000 [00:00<?, ?step/s]", True),
        (" 30%|███       | 30208/99840 [00:02<00:04, 14.3kstep/s]", True),
        ("100%|█████████▉| 99900/100000", True),  # rounded up to 100%, yet not finished
    ],
)
def test_unfinished_progress_bars_are_found(text: str, unfinished: bool) -> None:
    cell = nbformat.v4.new_code_cell("...")
    cell.outputs = [nbformat.v4.new_output("display_data", {"text/plain": text})]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert bool(unfinished_progress_bars(nb)) == unfinished
    # the same bar written to stderr by plain tqdm, redrawn with carriage returns
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=f"  0%|  | 0/9\r{text}\n")]
    assert bool(unfinished_progress_bars(nb)) == unfinished


def test_execute_stores_finished_bars_as_text(tmp_path: Path) -> None:
    """A real kernel: tqdm.auto draws a widget under nbclient, and the stored notebook holds
    its final text, no widget view and no widget state; nbval's sanitize pattern makes the
    text a fresh run shows (the bar at 0%) equal to the stored one."""
    path = tmp_path / "bars.ipynb"
    cells = [
        "from tqdm.auto import tqdm\nfor _ in tqdm(range(50), unit='step'):\n    pass",
        "for _ in tqdm(range(5), leave=False):\n    pass\nprint('after')",
        "import ipywidgets\nipywidgets.IntSlider(3)",
    ]
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path
    )
    execute_notebook(path)
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata
    outputs = [[o.get("data", o.get("text")) for o in c.outputs] for c in nb.cells]
    assert outputs == [
        [{"text/plain": "100%|██████████| 50/50"}],
        [{"text/plain": "100%|██████████| 5/5"}, "after\n"],
        [{"text/plain": "IntSlider(value=3)"}],
    ]
    assert not widget_views_without_state(nb) and not unfinished_progress_bars(nb)
    fresh = "  0%|          | 0/50 [00:00<?, ?step/s]"  # the text a fresh run's view comes with
    assert _sanitize(fresh) == _sanitize("100%|██████████| 50/50") != _sanitize("IntSlider")
