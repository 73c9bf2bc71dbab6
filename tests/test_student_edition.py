"""The student edition (``python -m rlcourse.student_edition OUT_DIR``): no solution code
in it, outputs cleared, everything else intact, and each notebook runs up to its first
exercise and stops there with the exercise's hint."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from rlcourse import student_edition
from rlcourse.execute import _current_env_kernel_manager

REPO = Path(__file__).parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"


def _is_exercise(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and BEGIN in cell.source


def _split_solutions(nb: nbformat.NotebookNode) -> tuple[list[str], str]:
    """The code of every solution line (comments dropped, 8 characters or more), and the
    notebook's text outside the solution regions."""
    lines, outside, inside = [], [], False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            marker = line.strip()
            if cell.cell_type == "code" and marker.startswith(BEGIN):
                inside = True
            elif cell.cell_type == "code" and marker.startswith(END):
                inside = False
            elif inside:
                code = re.sub(r"\s+#.*$", "", marker)
                if len(code) >= 8 and not code.startswith("#"):
                    lines.append(code)
            else:
                outside.append(line)
    return lines, "\n".join(outside)


def _stub_hint(source: str) -> str:
    """The message of the ``raise NotImplementedError("...")`` in a stubbed cell."""
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Raise)
            and isinstance(node.exc, ast.Call)
            and getattr(node.exc.func, "id", "") == "NotImplementedError"
        ):
            return ast.literal_eval(node.exc.args[0])
    raise AssertionError(f"no `raise NotImplementedError(...)` in\n{source}")


@pytest.fixture(scope="module")
def edition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("student") / "edition"
    assert student_edition.main([str(out), "--root", str(REPO)]) == 0
    return out


def _pairs(edition: Path) -> list[tuple[nbformat.NotebookNode, nbformat.NotebookNode]]:
    return [
        (
            nbformat.read(path, as_version=4),
            nbformat.read(edition / "notebooks" / path.name, as_version=4),
        )
        for path in NOTEBOOKS
    ]


# ------------------------------------------------------------------- content
def test_every_notebook_and_what_it_needs_is_written(edition: Path) -> None:
    assert sorted(p.name for p in (edition / "notebooks").glob("*.ipynb")) == [
        p.name for p in NOTEBOOKS
    ]
    for name in ("rlcourse/checks.py", "requirements.txt", "pyproject.toml", "README.md"):
        assert (edition / name).is_file(), name
    assert not list(edition.rglob("__pycache__"))


def test_no_solution_code_in_the_student_edition(edition: Path) -> None:
    """No line of any solution is left in the student edition.

    A solution line may still appear where the instructor edition itself shows it outside
    every solution region (the chapter's text or demo code); it must not appear in the
    exercise cells, and nowhere else either.
    """
    solutions, shown = [], ""
    for path in NOTEBOOKS:
        lines, outside = _split_solutions(nbformat.read(path, as_version=4))
        solutions += lines
        shown += outside
    assert len(solutions) >= 30, "the solution regions were not found"
    student_text, exercise_text = "", ""
    for path in NOTEBOOKS:
        teacher = nbformat.read(path, as_version=4)
        student = nbformat.read(edition / "notebooks" / path.name, as_version=4)
        for ours, theirs in zip(teacher.cells, student.cells, strict=True):
            student_text += theirs.source + "\n"
            if _is_exercise(ours):
                exercise_text += theirs.source + "\n"
    assert BEGIN not in exercise_text and END not in exercise_text
    in_exercises = [line for line in solutions if line in exercise_text]
    assert not in_exercises, f"solution code left in the exercise cells: {in_exercises}"
    leaked = [line for line in solutions if line in student_text and line not in shown]
    assert not leaked, f"solution code in the student edition: {leaked}"


def test_outputs_and_widget_state_are_cleared(edition: Path) -> None:
    for _, student in _pairs(edition):
        assert "widgets" not in student.metadata
        for cell in student.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
                assert "execution" not in cell.metadata


def test_everything_but_the_solutions_is_intact(edition: Path) -> None:
    for teacher, student in _pairs(edition):
        assert len(teacher.cells) == len(student.cells)
        assert teacher.metadata.kernelspec == student.metadata.kernelspec
        for ours, theirs in zip(teacher.cells, student.cells, strict=True):
            assert ours.cell_type == theirs.cell_type
            assert ours.metadata.get("tags") == theirs.metadata.get("tags")
            if not _is_exercise(ours):
                assert ours.source == theirs.source
                continue
            before, rest = ours.source.split(BEGIN, 1)
            after = rest.split(END, 1)[1]
            # the def line above and the checker call below are kept, at the same indentation
            assert theirs.source.startswith(before.rsplit("\n", 1)[0])
            assert theirs.source.endswith(after)
            indent = before.rsplit("\n", 1)[1]
            assert f"\n{indent}raise NotImplementedError(" in theirs.source


def test_every_exercise_stub_raises_with_a_specific_hint(edition: Path) -> None:
    n = 0
    for teacher, student in _pairs(edition):
        for ours, theirs in zip(teacher.cells, student.cells, strict=True):
            if not _is_exercise(ours):
                continue
            function = re.search(r"def (\w+)\(", ours.source).group(1)
            hint = _stub_hint(theirs.source)
            assert hint.startswith(f"Exercise: implement `{function}(")
            assert student_edition.HINTS[function] in hint
            namespace: dict = {}
            exec(
                theirs.source.split("\n\n\nchecks.")[0].replace("from rlcourse import checks", ""),
                namespace,
            )
            with pytest.raises(NotImplementedError, match=re.escape(hint[:40])):
                namespace[function](*[None] * namespace[function].__code__.co_argcount)
            n += 1
    assert n >= 14


# ----------------------------------------------------------------- execution
def _execute(path: Path) -> tuple[nbformat.NotebookNode, CellExecutionError | None]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.kernel_manager_class = _current_env_kernel_manager()
    try:
        client.execute()
    except CellExecutionError as err:
        return nb, err
    return nb, None


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS], ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_up_to_its_first_exercise_and_fails_with_the_hint(
    edition: Path, name: str
) -> None:
    nb, error = _execute(edition / "notebooks" / name)
    exercises = [
        i for i, cell in enumerate(nb.cells) if "raise NotImplementedError(" in cell.source
    ]
    if not exercises:  # the welcome chapter has no exercise: it runs to the end
        assert error is None, error
        return
    assert error is not None, f"{name} ran to the end although its exercises are stubs"
    failed = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and any(o.output_type == "error" for o in cell.outputs)
    ]
    assert failed == [exercises[0]], f"{name}: cell {failed} failed, not the first exercise"
    assert error.ename == "NotImplementedError", str(error)
    hint = _stub_hint(nb.cells[exercises[0]].source)
    assert hint in error.evalue, error.evalue
    ran = [c for c in nb.cells[: exercises[0]] if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count is not None for c in ran), f"{name}: a cell before did not run"


# -------------------------------------------------- the command, on a toy course
TOY = """def double(x):
    # BEGIN SOLUTION
    # HINT: multiply by two
    return 2 * x
    # END SOLUTION


class Thing:
    def triple(self, x):
        # BEGIN SOLUTION
        return 3 * x
        # END SOLUTION


print(double(2))"""


def _toy_course(root: Path, source: str = TOY) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Toy\n`# BEGIN SOLUTION` marks a solution."),
        nbformat.v4.new_code_cell(source, execution_count=1),
        nbformat.v4.new_code_cell("print('hi')", execution_count=2),
    ]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    nb.metadata["widgets"] = {"state": {}}
    (root / "notebooks").mkdir(parents=True)
    nbformat.write(nb, root / "notebooks" / "01_toy.ipynb")
    (root / "notebooks" / "data.csv").write_text("a,b\n1,2\n")
    (root / "README.md").write_text("toy\n")
    return root


def test_stubs_keep_indentation_and_take_hint_comments(tmp_path: Path, capsys) -> None:
    course = _toy_course(tmp_path / "course")
    assert student_edition.main([str(tmp_path / "out"), "--root", str(course)]) == 0
    assert "1 notebooks with 2 exercises" in capsys.readouterr().out
    nb = nbformat.read(tmp_path / "out" / "notebooks" / "01_toy.ipynb", as_version=4)
    source = nb.cells[1].source
    assert "2 * x" not in source and "3 * x" not in source and "HINT" not in source
    assert "\n    raise NotImplementedError(\n" in source
    assert "\n        raise NotImplementedError(\n" in source
    assert source.endswith("\n\n\nprint(double(2))")
    namespace: dict = {}
    exec(source.replace("print(double(2))", ""), namespace)
    with pytest.raises(NotImplementedError, match=r"`double\(x\)` -- multiply by two"):
        namespace["double"](1)
    with pytest.raises(NotImplementedError, match=r"`triple\(self, x\)` -- as the exercise"):
        namespace["Thing"]().triple(1)
    assert nb.cells[2].outputs == [] and nb.cells[2].execution_count is None
    assert "widgets" not in nb.metadata
    assert (tmp_path / "out" / "notebooks" / "data.csv").read_text() == "a,b\n1,2\n"
    assert (tmp_path / "out" / "README.md").is_file()


@pytest.mark.parametrize(
    "where", ["notebooks", "notebooks/student", ".", "rlcourse_like/../notebooks/x/y"]
)
def test_refuses_to_write_over_the_course(tmp_path: Path, where: str, capsys) -> None:
    course = _toy_course(tmp_path / "course")
    before = (course / "notebooks" / "01_toy.ipynb").read_bytes()
    assert student_edition.main([str(course / where), "--root", str(course), "--force"]) == 2
    assert "choose" in capsys.readouterr().err
    assert (course / "notebooks" / "01_toy.ipynb").read_bytes() == before
    assert sorted(p.name for p in (course / "notebooks").iterdir()) == ["01_toy.ipynb", "data.csv"]


def test_refuses_a_non_empty_folder_unless_forced(tmp_path: Path, capsys) -> None:
    course = _toy_course(tmp_path / "course")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert student_edition.main([str(out), "--root", str(course)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert student_edition.main([str(out), "--root", str(course), "--force"]) == 0
    assert (out / "mine.txt").read_text() == "keep me"
    assert (out / "notebooks" / "01_toy.ipynb").is_file()


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "never closed"),
        ("def f():\n    return 1\n    # END SOLUTION\n", "never opened"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "inside another"),
        ("x = 1  # BEGIN SOLUTION\n# END SOLUTION\n", "marker after code"),
    ],
)
def test_malformed_regions_are_reported_and_nothing_is_written(
    tmp_path: Path, source: str, problem: str, capsys
) -> None:
    course = _toy_course(tmp_path / "course", source)
    assert student_edition.main([str(tmp_path / "out"), "--root", str(course)]) == 2
    err = capsys.readouterr().err
    assert problem in err and "01_toy.ipynb, cell 1" in err
    assert not (tmp_path / "out").exists()


def test_no_notebooks_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert student_edition.main([str(tmp_path / "out"), "--root", str(tmp_path)]) == 2
    assert "no notebooks in" in capsys.readouterr().err


# ---------------------------------------------------------------- languages
def test_english_edition_leaves_out_the_translated_editions(edition: Path) -> None:
    """notebooks/zh-CN/ holds the solutions too: the English edition does not copy it."""
    assert not (edition / "notebooks" / "zh-CN").exists()
    assert not list((edition / "notebooks").rglob("catalog"))


def test_zh_cn_edition_from_the_chinese_notebooks(tmp_path: Path) -> None:
    """``--language zh-CN`` stubs the Chinese notebooks, with Chinese hints, stub comments
    and README; no solution line is left."""
    from rlcourse.i18n import tr_in

    out = tmp_path / "zh"
    assert student_edition.main([str(out), "--root", str(REPO), "--language", "zh-CN"]) == 0
    chinese = REPO / "notebooks" / "zh-CN"
    written = sorted(p.name for p in (out / "notebooks").glob("*.ipynb"))
    assert written == [p.name for p in NOTEBOOKS]
    assert "安装" in (out / "README.md").read_text(encoding="utf-8")
    n = 0
    for path in NOTEBOOKS:
        teacher = nbformat.read(chinese / path.name, as_version=4)
        student = nbformat.read(out / "notebooks" / path.name, as_version=4)
        for ours, theirs in zip(teacher.cells, student.cells, strict=True):
            if not _is_exercise(ours):
                assert theirs.source == ours.source
                continue
            function = re.search(r"def (\w+)\(", ours.source).group(1)
            hint = _stub_hint(theirs.source)
            assert tr_in("zh-CN", student_edition.HINTS[function]) in hint
            assert re.search(r"[\u4e00-\u9fff]", hint), hint
            assert "# BEGIN SOLUTION" not in theirs.source
            n += 1
    assert n >= 14
