"""Write the student edition of the course: the notebooks without their solutions.

::

    python -m rlcourse.student_edition OUT_DIR [--force] [--root COURSE_DIR] [--language zh-CN]

Every code cell region between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` becomes a
stub, at the region's indentation, that raises ``NotImplementedError`` with a hint;
the ``def`` line above the region and the checker call below it stay. Outputs,
execution counts and widget state are cleared; markdown and all other code are kept
as they are. The hint is the text of the region's ``# HINT: ...`` comment lines if it
has any, else the course's hint for that exercise (``HINTS``), else a generic one
naming the function.

The edition is in one language: English (the default) from ``notebooks/``, or a translated
edition's language from ``notebooks/<language>/`` (``--language zh-CN``), whose hints, stub
comments and README are then in that language too (:mod:`rlcourse.i18n`).

``OUT_DIR`` receives ``notebooks/`` (the student notebooks and any other files the
notebooks folder holds, other than the translated editions) and what a student needs to
install and run them: the ``rlcourse`` package, ``requirements.txt``, ``pyproject.toml``,
``binder/``, a students' README and the licence. ``OUT_DIR`` must not be the course
itself or lie inside one of the folders it copies, and must be empty unless ``--force``
is given (which overwrites files of the same name and deletes nothing).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import shutil
import sys
from pathlib import Path

import nbformat

from rlcourse.execute import strip_volatile_metadata
from rlcourse.i18n import tr_in
from rlcourse.translate import EDITIONS

BEGIN, END, HINT = "# BEGIN SOLUTION", "# END SOLUTION", "# HINT:"

#: What the edition copies besides the notebooks, relative to the course's root.
COURSE_FILES = ("rlcourse", "requirements.txt", "pyproject.toml", "binder", "LICENSE")

#: the edition's README: how a student installs and works through it (the course's own
#: README addresses instructors too, and its test command needs the solutions)
STUDENT_README = """\
# Reinforcement learning, from MDPs to PPO: student edition

Notebooks that walk from MDPs and dynamic programming through Monte Carlo and TD,
Q-learning and SARSA, DQN, policy gradient and PPO, to training on the GPU. Every chapter
has exercises: a function to write, where the notebook says `raise NotImplementedError`,
followed by a checker that tests it and, when it is wrong, says where and which classic
mistake it looks like.

## Set up and start

On a machine with Python 3.11:

```bash
python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt && \\
    jupyter lab notebooks/00_welcome.ipynb
```

Work through the chapters in order. Each notebook runs from the top until its first
exercise, where it stops with a hint; write the function, run the cell again, and read
the checker's message. `rlcourse/` holds the course's own implementations: read them
after you have written yours.
"""
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")

#: Hints for the course's exercises, by function name (a ``# HINT:`` line overrides them).
HINTS = {
    "expected_return": (
        "build P_pi[s, s'] = sum_a policy[s, a] P[s, a, s'] and r_pi[s] = sum_a policy[s, a] "
        "R[s, a]; then loop t = 0 .. horizon - 1, starting from d = start: add gamma**t times "
        "the expected reward R_{t+1} (d times r_pi), then move the distribution one step on "
        "(the row vector d times the matrix P_pi)."
    ),
    "exact_q_pi": (
        "write q_pi(s, a) = r(s, a) + gamma sum_s' p(s'|s, a) sum_a' pi(a'|s') q_pi(s', a') as "
        "a linear system over the S*A pairs: M[(s, a), (s', a')] = P[s, a, s'] * policy[s', a'] "
        "(torch.einsum, then reshape to [S*A, S*A]); solve (I - gamma M) q = R.reshape(-1) and "
        "reshape the answer to [S, A]."
    ),
    "value_iteration": (
        "start from V = 0 and loop: q(s, a) = r(s, a) + gamma * sum_s' P[s, a, s'] V(s') for "
        "all pairs at once ([S, A]), V_new = the max of q over the actions, delta = the "
        "largest |V_new - V|; stop once delta < theta. Return V and the one-hot policy of "
        "argmax_a q computed from the final V."
    ),
    "q_policy_iteration": (
        "loop: evaluate the policy's q_pi exactly (as exact_q_pi in chapter 1), then in every "
        "state keep the current action if q_pi of it is within 1e-9 of the max, else switch "
        "to argmax_a q_pi(s, a); stop when no state changed and return (Q, policy)."
    ),
    "n_step_td_episode": (
        "loop tau from 0 to T - 1 (T rewards, T + 1 states); G = the sum of gamma^(i - tau) * "
        "rewards[i] for i from tau up to min(tau + n, T) - 1 (rewards[i] holds R_{i+1}); only "
        "if tau + n < T add gamma^n * V[states[tau + n]]; then move V[states[tau]] a step alpha "
        "towards G. Return V."
    ),
    "first_visit_mc_update": (
        "compute every return backwards, G_t = rewards[t] + gamma * G_{t+1}; then go forwards "
        "through S_0 .. S_{T-1} (states[T], where the episode ended, has no return) and, for "
        "the first visit of each state s only, add 1 to counts[s] (in place) and move V[s] by "
        "(G_t - V[s]) / counts[s]. Return V."
    ),
    "epsilon_greedy": (
        "with probability epsilon return a uniformly random action (any of the len(q) "
        "actions, the greedy one included), otherwise a greedy action, chosen uniformly "
        "among all actions of highest value (np.flatnonzero(q == q.max())). Draw all random "
        "numbers from rng (rng.random(), rng.integers(), rng.choice())."
    ),
    "expected_sarsa_update": (
        "build pi(a|s_next) of the epsilon-greedy policy on Q[s_next]: epsilon / A for every "
        "action, plus (1 - epsilon) split equally among the actions of highest value; move "
        "Q[s, a] a step alpha towards r + gamma * sum_a pi(a|s_next) Q[s_next, a] (r alone "
        "after termination) and give back the updated table."
    ),
    "double_q_update": (
        "update_first picks the table to update (Q1 if True, else Q2); select "
        "a_star = argmax of that table's row s_next, evaluate it with the other table, and "
        "move the updated table's [s, a] a step alpha towards r + gamma * other[s_next, "
        "a_star] (r alone after termination). Give back both tables, as a pair."
    ),
    "dqn_targets": (
        "for every sample, r + gamma * (max over a' of next_q_target[:, a']), with no "
        "bootstrap where terminated is 1. Shapes: rewards [B], next_q_target [B, A], "
        "terminated [B]; return [B]."
    ),
    "dqn_loss": (
        "Q(s, a) of the actions taken from q_net (gather), the targets from target_net "
        "through your dqn_targets under torch.no_grad(), and the mean over the batch of "
        "the squared TD error."
    ),
    "reinforce_loss": (
        "compute the reward-to-go G_t = rewards[t] + gamma * G_{t+1} of every step "
        "(backwards from the end; rewards[t] holds R_{t+1}) and log pi(A_t|S_t) of the "
        "actions taken (log_softmax over the actions), and return minus the mean of their "
        "product, a scalar."
    ),
    "gae_advantages": (
        "go backwards in time: delta_t = R_{t+1} + gamma * V(S_{t+1}) - V(S_t), with "
        "rewards[t] = R_{t+1} and next_values[t] = V(S_{t+1}), without the bootstrap term "
        "where terminated (also when truncated too); A_t = delta_t + gamma * lam * A_{t+1}, "
        "with the trace cut wherever an episode ended (terminated or truncated)."
    ),
    "ppo_policy_loss": (
        "the ratio is exp(new_log_probs - old_log_probs), against the behaviour policy; "
        "return minus the mean of min(ratio * A, clip(ratio, 1 - clip_coef, 1 + clip_coef) * A)."
    ),
    "cartpole_step": (
        "unpack x, x_dot, theta, theta_dot = state (rows of [N]), compute the force from the "
        "actions, then temp, theta_acc and x_acc as in the equations, Euler-step all four from "
        "the old state with torch.stack, and judge termination on the new state."
    ),
    "clip_per_agent": (
        "each agent's squared norm is the sum over all tensors of g.flatten(1).square().sum(1) "
        "(shape [K]); scale = min(1, max_norm / (norm + 1e-6)) per agent, broadcast over each "
        "tensor's other dimensions."
    ),
    "n_step_returns": (
        "loop t from T - 1 down to 0: what follows rewards[t] is 0 at a termination (even "
        "if the step was truncated too), else next_values[t] at the last step or at a "
        "truncation, else returns[t + 1] (torch.where on the flags); G_t is rewards[t] plus "
        "gamma times what follows."
    ),
}


class EditionError(Exception):
    """The student edition cannot be written; the message says why."""


# ----------------------------------------------------------------- one cell
def solution_regions(source: str, where: str = "cell") -> list[tuple[int, int]]:
    """Line indices ``(begin, end)`` of the ``# BEGIN/END SOLUTION`` marker pairs in ``source``.

    Raises :class:`EditionError` (naming ``where``) for a region that is not closed, an
    ``END`` without ``BEGIN``, a region opened inside another, or a marker that is not
    on a line of its own (which would leave a solution in the student edition).
    """
    regions, begin = [], None
    for i, line in enumerate(source.splitlines()):
        marker = line.strip()
        if (BEGIN in marker or END in marker) and not marker.startswith((BEGIN, END)):
            raise EditionError(f"{where}: line {i + 1} has a solution marker after code: {marker}")
        if marker.startswith(BEGIN):
            if begin is not None:
                raise EditionError(f"{where}: line {i + 1} opens a solution inside another one")
            begin = i
        elif marker.startswith(END):
            if begin is None:
                raise EditionError(f"{where}: line {i + 1} closes a solution that was never opened")
            regions.append((begin, i))
            begin = None
    if begin is not None:
        raise EditionError(f"{where}: the solution opened on line {begin + 1} is never closed")
    return regions


def _enclosing_function(source: str, line: int) -> tuple[str, str] | None:
    """``(name, arguments)`` of the innermost ``def`` around 0-based ``line``, if any."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics: fall back to the nearest `def` above
        for text in reversed(source.splitlines()[:line]):
            match = re.match(r"\s*(?:async\s+)?def\s+(\w+)\s*\((.*)\)", text)
            if match:
                return match.group(1), match.group(2)
        return None
    found = None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.lineno <= line + 1 <= (node.end_lineno or node.lineno):
                if found is None or node.lineno > found.lineno:
                    found = node
    return (found.name, ast.unparse(found.args)) if found else None


def exercise_hint(source: str, begin: int, end: int, language: str = "en") -> str:
    """The hint for the solution region on lines ``begin..end`` (0-based) of ``source``, in
    ``language`` (a ``# HINT:`` line is taken as it is written)."""
    lines = source.splitlines()[begin + 1 : end]
    own = [line.strip()[len(HINT) :].strip() for line in lines if line.strip().startswith(HINT)]
    function = _enclosing_function(source, begin)
    if function is None:
        body = " ".join(own) or tr_in(
            language, "as the exercise above describes; the check below tells you more."
        )
        return tr_in(language, "Exercise: write the code of this cell -- {body}", body=body)
    name, args = function
    body = (
        " ".join(own)
        or (tr_in(language, HINTS[name]) if name in HINTS else "")
        or tr_in(
            language,
            "as the exercise above describes; the checker below tells you what is still wrong.",
        )
    )
    return tr_in(
        language, "Exercise: implement `{name}({args})` -- {body}", name=name, args=args, body=body
    )


def _string_literal(text: str, indent: str, width: int = 80) -> list[str]:
    """``text`` as implicitly concatenated string literals, one per line of ~``width``."""
    pieces, current = [], ""
    for word in text.split(" "):
        if current and len(current) + len(word) + 1 > width:
            pieces.append(current + " ")
            current = word
        else:
            current = f"{current} {word}" if current else word
    pieces.append(current)
    return [indent + json.dumps(piece, ensure_ascii=False) for piece in pieces]


def stub_source(source: str, where: str = "cell", language: str = "en") -> tuple[str, list[str]]:
    """``source`` with each solution region replaced by a stub; also returns the hints."""
    lines = source.splitlines()
    hints = []
    your_code = tr_in(language, "# YOUR CODE HERE: replace the `raise` below with your solution.")
    for begin, end in reversed(solution_regions(source, where)):
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        hint = exercise_hint(source, begin, end, language)
        hints.insert(0, hint)
        stub = [
            f"{indent}{your_code}",
            f"{indent}raise NotImplementedError(",
            *_string_literal(hint, indent + "    "),
            f"{indent})",
        ]
        lines[begin : end + 1] = stub
    return "\n".join(lines) + ("\n" if source.endswith("\n") else ""), hints


# ------------------------------------------------------------- one notebook
def student_notebook(
    nb: nbformat.NotebookNode, name: str = "notebook", language: str = "en"
) -> tuple[nbformat.NotebookNode, list[str]]:
    """A copy of ``nb`` with its solutions stubbed (hints in ``language``) and its outputs
    cleared, and its hints."""
    nb = copy.deepcopy(nb)
    strip_volatile_metadata(nb)
    hints = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        if BEGIN in cell.source or END in cell.source:
            cell.source, cell_hints = stub_source(cell.source, f"{name}, cell {index}", language)
            hints += cell_hints
    return nb, hints


# ---------------------------------------------------------------- the course
def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_out_dir(root: Path, out_dir: Path, force: bool) -> None:
    root, out = root.resolve(), out_dir.resolve()
    if out == root:
        raise EditionError(f"{out_dir} is the course itself: choose another folder")
    for name in ("notebooks", *COURSE_FILES):
        if (root / name).is_dir() and _inside(out, root / name):
            raise EditionError(
                f"{out_dir} is inside the course's {name}/ folder: choose a folder outside it, "
                "so that nothing there is overwritten"
            )
    if out.exists() and not out.is_dir():
        raise EditionError(f"{out_dir} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise EditionError(
            f"{out_dir} is not empty: choose an empty or new folder, or pass --force to "
            "overwrite the files of the same name there"
        )


def build(
    root: Path, out_dir: Path, force: bool = False, language: str = "en"
) -> dict[Path, list[str]]:
    """Write the student edition of the course at ``root`` into ``out_dir``, in ``language``
    ("en": from ``notebooks/``; a translated edition's: from ``notebooks/<language>/``).

    Returns the written notebooks with the hints of their exercises. Every notebook is
    converted before anything is written, so a malformed one leaves ``out_dir`` untouched.
    """
    if language != "en" and language not in EDITIONS:
        raise EditionError(f"no {language!r} edition; choose en or one of {list(EDITIONS)}")
    source_dir = root / "notebooks"
    notebooks_dir = source_dir if language == "en" else source_dir / language
    paths = sorted(p for p in notebooks_dir.glob("*.ipynb")) if notebooks_dir.is_dir() else []
    if not paths:
        raise EditionError(
            f"no notebooks in {notebooks_dir}: run from the course's root folder or pass --root"
        )
    _check_out_dir(root, out_dir, force)
    converted = {
        path.name: student_notebook(nbformat.read(path, as_version=4), path.name, language)
        for path in paths
    }
    out_notebooks = out_dir / "notebooks"
    for item in notebooks_dir.iterdir():  # whatever the notebooks read beside them
        # not the translated editions (they hold solutions) nor their catalogs
        skip = item.name in EDITIONS or item.name == "catalog"
        if item.suffix != ".ipynb" and not skip and not _IGNORED(str(notebooks_dir), [item.name]):
            _copy(item, out_notebooks / item.name)
    out_notebooks.mkdir(parents=True, exist_ok=True)
    written = {}
    for filename, (nb, hints) in converted.items():
        nbformat.write(nb, out_notebooks / filename)
        written[out_notebooks / filename] = hints
    for name in COURSE_FILES:
        if (root / name).exists():
            _copy(root / name, out_dir / name)
    (out_dir / "README.md").write_text(tr_in(language, STUDENT_README), encoding="utf-8")
    return written


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=_IGNORED, dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m rlcourse.student_edition OUT_DIR [--force] [--root DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m rlcourse.student_edition",
        description="Write the course's student edition: every solution replaced by a stub "
        "with a hint, outputs cleared.",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder to write it to")
    parser.add_argument(
        "--force", action="store_true", help="write into a non-empty OUT_DIR (deletes nothing)"
    )
    parser.add_argument(
        "--language",
        default="en",
        choices=("en", *EDITIONS),
        help="the edition's language (default: en; zh-CN: from notebooks/zh-CN/)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path.cwd(),
        help="the course's root folder, holding notebooks/ (default: the current folder)",
    )
    args = parser.parse_args(argv)
    try:
        written = build(args.root, args.out_dir, force=args.force, language=args.language)
    except EditionError as err:
        print(f"student_edition: error: {err}", file=sys.stderr)
        return 2
    n_exercises = sum(len(hints) for hints in written.values())
    print(
        f"wrote {len(written)} notebooks with {n_exercises} exercises stubbed to "
        f"{args.out_dir / 'notebooks'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
