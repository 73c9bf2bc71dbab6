"""Build a translated edition of the course from the English notebooks and a catalog.

::

    python -m rlcourse.translate zh-CN            # write notebooks/zh-CN/NN_*.ipynb
    python -m rlcourse.translate zh-CN --check    # what is missing or stale; exit 1 if any
    python -m rlcourse.translate zh-CN --status 05_dqn   # the cells to (re)translate, in full

The English notebooks are the source: executed, with their outputs. For each one,
``notebooks/<language>/catalog/NN_name.json`` holds, for **every** cell, keyed by the cell's
id, the hash of the English source it translates (``source_hash``) and:

* a markdown cell: ``"text"``, the whole cell in the other language;
* a code cell: ``"replace"``, a list of ``[English, translation]`` pairs, each replaced in the
  cell's source and in its outputs: code comments, and the sentences the cell prints (the
  literal text of the ``print``, replaced in the code and in the stored output alike, so
  that the translated notebook prints what it stores). An empty list: nothing to translate.

The translated notebook keeps the cell ids, the code and the outputs (only the pairs
change them), and its first code cell sets the package's language
(:func:`rlcourse.i18n.set_language`), so that checkers, hints and widgets speak it too.

A cell without an entry, an entry whose ``source_hash`` is not the English cell's hash (the
cell changed after it was translated), or a pair whose English text the cell does not
contain, is an error that names the notebook, the cell and what to do; ``--check`` lists
them all (``tests/test_translation.py`` runs it). After revising a translation, put the
hash that ``--status`` prints in its entry.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from rlcourse.i18n import tr_in, translate_printed

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: the languages a translated edition exists for
EDITIONS = ("zh-CN",)
#: what the first code cell of a translated notebook starts with (see language_line)
LANGUAGE_LINE = (
    'from rlcourse.i18n import set_language\n\nset_language("{language}")  # {comment}\n\n'
)


#: markers of the exercises that a translation keeps as they are (rlcourse.student_edition)
KEPT = ("# BEGIN SOLUTION", "# END SOLUTION", "# HINT:")


def language_line(language: str) -> str:
    """The lines that set the package's language, at the top of a translated notebook."""
    comment = tr_in(language, "the checkers, hints and widgets speak this language")
    return LANGUAGE_LINE.format(language=language, comment=comment)


def source_hash(source: str) -> str:
    """The hash that ties a translation to the English text it translates."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def edition_dir(language: str) -> Path:
    return NOTEBOOKS / language


def catalog_path(language: str, name: str) -> Path:
    return edition_dir(language) / "catalog" / f"{name}.json"


def english_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def command(language: str, *args: str) -> str:
    return " ".join(["python -m rlcourse.translate", language, *args])


@dataclass(frozen=True)
class Problem:
    """One thing that keeps a notebook's translation from being built."""

    notebook: str
    cell: str
    what: str

    def __str__(self) -> str:
        return f"{self.notebook}, cell {self.cell}: {self.what}"


def load_catalog(language: str, name: str) -> dict[str, Any]:
    path = catalog_path(language, name)
    if not path.exists():
        return {"notebook": f"{name}.ipynb", "language": language, "cells": {}}
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _replace_all(text: str, pairs: list[list[str]]) -> str:
    for english, translated in pairs:
        text = text.replace(english, translated)
    return text


def _translate_outputs(outputs: list[Any], pairs: list[list[str]], language: str) -> None:
    """Apply ``pairs`` to the text a code cell printed or displayed (not to images), and
    translate what the package printed (:func:`rlcourse.i18n.translate_printed`)."""
    for out in outputs:
        if out.get("output_type") == "stream":
            out["text"] = translate_printed(_replace_all(out["text"], pairs), language)
        for mime in ("text/plain", "text/markdown"):
            if mime in out.get("data", {}):
                out["data"][mime] = _replace_all(out["data"][mime], pairs)


def translate_notebook(
    nb: nbformat.NotebookNode, catalog: dict[str, Any], language: str, name: str
) -> tuple[nbformat.NotebookNode, list[Problem]]:
    """The translated copy of ``nb`` and the problems found (the copy is only right when
    there are none)."""
    out = copy.deepcopy(nb)
    entries = catalog.get("cells", {})
    problems: list[Problem] = []
    status = command(language, "--status", name)
    first_code = True
    for cell in out.cells:
        entry = entries.get(cell.id)
        h = source_hash(cell.source)
        if (
            entry is None
            or (cell.cell_type == "markdown" and not entry.get("text"))
            or (cell.cell_type == "code" and entry.get("replace") is None)
        ):
            problems.append(Problem(name, cell.id, f"no translation; see `{status}`"))
        elif entry.get("source_hash") != h:
            problems.append(
                Problem(
                    name,
                    cell.id,
                    f"stale: the English cell changed after it was translated (hash {h}, the "
                    f"translation's {entry.get('source_hash')}); revise it as `{status}` shows",
                )
            )
        elif cell.cell_type == "markdown":
            cell.source = entry["text"]
        elif cell.cell_type == "code":
            pairs = entry["replace"]
            markers = [e for e, _ in pairs if any(m in e for m in KEPT)]
            if markers:
                problems.append(
                    Problem(
                        name,
                        cell.id,
                        f"{markers[0]!r} holds a marker the student edition "
                        f"needs as it is ({', '.join(KEPT)}): leave it out of the pair",
                    )
                )
            missing = [e for e, _ in pairs if e not in cell.source]
            if missing:
                problems.append(Problem(name, cell.id, f"the code does not contain {missing[0]!r}"))
            cell.source = _replace_all(cell.source, pairs)
            _translate_outputs(cell.get("outputs", []), pairs, language)
        if cell.cell_type == "code" and first_code:
            cell.source = language_line(language) + cell.source
            first_code = False
    known = {c.id for c in nb.cells}
    for cell_id in entries:
        if cell_id not in known:
            problems.append(
                Problem(
                    name,
                    cell_id,
                    "the catalog has a cell the English notebook no longer has; delete its entry",
                )
            )
    out.metadata["rlcourse"] = {"language": language, "translated_from": f"../{name}.ipynb"}
    return out, problems


def build(language: str, write: bool = True, written: list[Path] | None = None) -> list[Problem]:
    """Translate every English notebook; write the ones without problems that differ from
    what is stored (``write``; their paths are added to ``written``), else report them."""
    problems: list[Problem] = []
    for path in english_notebooks():
        name = path.stem
        nb = nbformat.read(path, as_version=4)
        translated, found = translate_notebook(nb, load_catalog(language, name), language, name)
        problems += found
        if found:
            continue
        target = edition_dir(language) / path.name
        text = nbformat.writes(translated) + "\n"
        stored = target.read_text(encoding="utf-8") if target.exists() else None
        if stored == text:
            continue
        if write:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            if written is not None:
                written.append(target)
        else:
            problems.append(
                Problem(
                    name,
                    "(all)",
                    f"{target.relative_to(ROOT)} is not what the build writes now; run "
                    f"`{command(language)}`",
                )
            )
    return problems


def status(language: str, name: str) -> str:
    """The cells of notebook ``name`` to translate or revise: id, type, current hash and
    the English source."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    _, problems = translate_notebook(nb, load_catalog(language, name), language, name)
    todo = {p.cell: p.what for p in problems}
    lines = [f"{name}: {len(todo)} of {len(nb.cells)} cells to translate or revise"]
    for cell in nb.cells:
        if cell.id in todo:
            lines += [
                "",
                f"--- cell {cell.id} ({cell.cell_type}), source_hash {source_hash(cell.source)}:"
                f" {todo[cell.id]}",
                cell.source,
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("language", choices=EDITIONS)
    parser.add_argument("--check", action="store_true", help="report problems, write nothing")
    parser.add_argument("--status", metavar="NOTEBOOK", help="e.g. 05_dqn: the cells to do")
    args = parser.parse_args(argv)
    if args.status:
        print(status(args.language, Path(args.status).stem))
        return 0
    written: list[Path] = []
    problems = build(args.language, write=not args.check, written=written)
    for path in written:
        print(f"wrote {path.relative_to(ROOT)}")
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problems; nothing was written for the notebooks named above")
        return 1
    print(f"notebooks/{args.language}/ is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
