"""Re-execute the course notebooks in place, in order, from a fresh kernel.

Run it after any change to ``rlcourse`` so that the stored outputs that nbval
compares are never stale::

    python -m rlcourse.execute                    # every notebooks/NN_*.ipynb
    python -m rlcourse.execute notebooks/02_dynamic_programming.ipynb

Each notebook runs top to bottom in its own folder with the current Python
interpreter; widget state and per-cell timing metadata are dropped, so that a
re-run changes only what really changed. A notebook that raises is not written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


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


def execute_notebook(path: Path, timeout: int = 600) -> float:
    """Execute ``path`` in place from a fresh kernel; return the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    strip_volatile_metadata(nb)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
        store_widget_state=False,
    )
    # Run with this interpreter, as `pytest --nbval-current-env` does.
    client.kernel_manager_class = _current_env_kernel_manager()
    t0 = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - t0
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
