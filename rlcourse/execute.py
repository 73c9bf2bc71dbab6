"""Re-execute the course notebooks in place, in order, from a fresh kernel.

Run it after any change to ``rlcourse`` so that the stored outputs that nbval
compares are never stale::

    python -m rlcourse.execute                    # every notebooks/NN_*.ipynb
    python -m rlcourse.execute notebooks/02_dynamic_programming.ipynb

Each notebook runs top to bottom in its own folder with the current Python
interpreter; widget state and per-cell timing metadata are dropped, so that a
re-run changes only what really changed. A notebook that raises is not written.

Widgets are stored as text. A widget's view needs its state to be drawn, and
the state is not stored (JupyterLab does not use it, and it changes on every
run), so GitHub, nbviewer and a freshly opened notebook show the text that
comes with the view: for a ``tqdm.auto`` progress bar that text is the bar as
it was *created*, "0%| | 0/100000", as if training never ran. Each widget view
is therefore replaced by its text, and a progress bar's text by its *final*
state, read from the widget's last state during the run, without the
elapsed-time and rate bracket (wall-clock numbers of one machine)::

    100%|██████████| 99840/99840

A student running the notebook in JupyterLab still gets the live bar (the
package uses ``tqdm.auto`` unchanged), and nbval compares the bars' text through
a pattern of ``nbval_sanitize.cfg`` that matches a bar at any progress. A bar
that ends below 100% is stored as it ended, and tests/test_notebooks.py fails
on it: training that stops early must finish its bar.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tqdm.std import Bar

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PROGRESS_MODELS = ("FloatProgressModel", "IntProgressModel")


def default_notebooks(root: Path = Path("notebooks")) -> list[Path]:
    """The chapter notebooks ``NN_*.ipynb`` under ``root``, in chapter order."""
    return sorted(p for p in root.glob("[0-9][0-9]_*.ipynb") if ".ipynb_checkpoints" not in str(p))


def strip_volatile_metadata(nb: nbformat.NotebookNode) -> None:
    """Drop saved widget state and per-cell execution timings."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.metadata.pop("collapsed", None)


def _model(state: dict[str, dict[str, Any]], ref: Any) -> dict[str, Any]:
    """The state of the model ``ref`` names ("IPY_MODEL_<id>" or "<id>"); {} if unknown."""
    if not isinstance(ref, str):
        return {}
    return state.get(ref.removeprefix("IPY_MODEL_"), {})


def progress_bar_text(model_id: str, state: dict[str, dict[str, Any]]) -> str | None:
    """The final text of the ``tqdm.notebook`` bar whose container is ``model_id``.

    ``state`` maps model ids to their last widget state. The bar is an HBox of an
    HTML (description and percentage), a progress bar and an HTML (``n/total`` and
    the bracket of elapsed time, rate and postfix); the text is
    ``"{left}|{bar}|{right}"`` without the bracket. None when ``model_id`` is not
    such a bar. (A bar hidden on closing, ``leave=False``, gets its final text too:
    nbval expects the text output its view comes with.)
    """
    box = _model(state, model_id)
    children = [_model(state, ref) for ref in box.get("children", [])]
    names = [c.get("_model_name") for c in children]
    if box.get("_model_name") != "HBoxModel" or len(children) != 3:
        return None
    if names[0] != "HTMLModel" or names[1] not in PROGRESS_MODELS or names[2] != "HTMLModel":
        return None
    left, progress, right = children

    def plain(value: Any) -> str:  # tqdm escapes HTML and pads with figure spaces
        return html.unescape(str(value or "")).replace("\u2007", " ")

    left_text = plain(left.get("value"))
    right_text = re.sub(r"\s*\[[^\]]*\]\s*$", "", plain(right.get("value")))
    percent = re.search(r"\s*(\d+)%$", left_text)
    if _model(state, box.get("layout")).get("visibility") == "hidden":
        # leave=False: hidden on closing, which tqdm does only for a finished bar, without
        # redrawing its text; the progress widget holds the final count
        desc = left_text[: percent.start()].strip() if percent else ""
        left_text = f"{desc} 100%" if desc else "100%"
        right_text = f" {progress.get('value', 0):g}/{progress.get('max', 0):g}"
        frac = 1.0
    elif percent:  # tqdm's own n / total (the widget's max stays the total it started with)
        frac = int(percent.group(1)) / 100
    else:
        lo, hi, value = (float(progress.get(k) or 0) for k in ("min", "max", "value"))
        frac = (value - lo) / (hi - lo) if hi > lo else 0.0
    bar = format(Bar(min(max(frac, 0.0), 1.0), default_len=10, charset=Bar.UTF), "")
    return f"{left_text}|{bar}|{right_text}"


def store_widgets_as_text(nb: nbformat.NotebookNode, state: dict[str, dict[str, Any]]) -> None:
    """Replace every widget view in ``nb``'s outputs by its text: a progress bar's final
    text (``progress_bar_text``), any other widget's own ``text/plain``; a view with
    no other data is dropped."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                text = progress_bar_text(data[WIDGET_VIEW].get("model_id", ""), state)
                data = {k: v for k, v in data.items() if k != WIDGET_VIEW}
                if text is not None:
                    data["text/plain"] = text
                if not data:
                    continue
                out.data = data
            kept.append(out)
        cell.outputs = kept


def execute_notebook(path: Path, timeout: int = 600) -> float:
    """Execute ``path`` in place from a fresh kernel; return the seconds it took.

    Widget views are stored as text (``store_widgets_as_text``), widget state and
    timing metadata not at all.
    """
    nb = nbformat.read(path, as_version=4)
    strip_volatile_metadata(nb)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
        store_widget_state=True,  # read below for the bars' final text, then dropped
    )
    # Run with this interpreter, as `pytest --nbval-current-env` does.
    client.kernel_manager_class = _current_env_kernel_manager()
    t0 = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - t0
    store_widgets_as_text(nb, client.widget_state)
    strip_volatile_metadata(nb)
    nbformat.write(nb, path)
    return elapsed


def _current_env_kernel_manager() -> type:
    from jupyter_client.manager import KernelManager

    class CurrentEnvKernelManager(KernelManager):
        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            return [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file]

    return CurrentEnvKernelManager


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/NN_*.ipynb)"
    )
    args = parser.parse_args(argv)
    paths = args.notebooks or default_notebooks()
    if not paths:
        print("no notebooks found: run from the course's root folder or name them", file=sys.stderr)
        return 2
    for path in paths:
        try:
            seconds = execute_notebook(path)
        except CellExecutionError as err:
            print(f"FAILED {path}: not written\n{err}", file=sys.stderr)
            return 1
        print(f"executed {path} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
