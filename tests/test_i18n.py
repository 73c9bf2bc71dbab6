"""The package speaks Chinese where a student reads it (rlcourse.i18n).

* Every template the package translates (found in its source: ``tr``/``tr_in`` calls, the
  module constants and tables they are given, texts marked with ``N_``) has a zh-CN entry
  with the same fields, and every entry is used.
* Every checker, made to fail in zh-CN (the wrong implementations of test_checks.py, the
  stub, a wrong return type), says so in Chinese, with no template left untranslated, and
  says exactly what it said before in English.
* A checker that passes prints its line in Chinese, and ``translate_printed`` turns the
  English line of an executed notebook into that same line.
* The widgets built in zh-CN show Chinese labels and still work; in English they show
  exactly their English labels.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import re
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from test_checks import BUGGY, CHECKERS, REFERENCES, reinforce, reinforce_gamma_t

from rlcourse import checks, i18n
from rlcourse.i18n import PASSED, RECOGNISED, tr_in, translate_printed

PACKAGE = Path(i18n.__file__).parent
TABLE = json.loads((i18n.LOCALE_DIR / "zh-CN.json").read_text(encoding="utf-8"))
#: Chinese characters, and the Chinese punctuation (a template that is only fields and
#: punctuation, like "{mdp}, {label}", differs from the English by its comma)
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
#: ``tr`` calls whose template is a local name, and what makes sure it has a translation
LOCAL_TEMPLATES = {
    ("rlcourse.widgets", "name"): "a perturbation's name: PERTURBATIONS marks them with N_",
}


# ------------------------------------------------------------------ the templates
def _elements(node: ast.expr, module: Any) -> list[Any] | None:
    """What ``node`` (``TABLE``, ``TABLE[key]``, ``TABLE[key][0]``) can be, for a table
    that is a module-level dict: its values, or an item of each."""
    if isinstance(node, ast.Name):
        value = getattr(module, node.id, None)
        return list(value.values()) if isinstance(value, dict) else None
    if isinstance(node, ast.Subscript):
        inner = _elements(node.value, module)
        if inner is None:
            return None
        if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
            return [item[node.slice.value] for item in inner]
        return inner  # TABLE[key]: one of the values
    return None


def _resolve(node: ast.expr, module: Any) -> list[str] | None:
    """The template(s) that ``node``, the argument of a call, stands for; None if unknown."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and isinstance(getattr(module, node.id, None), str):
        return [getattr(module, node.id)]
    if isinstance(node, ast.Subscript):
        found = _elements(node, module)
        if found is not None:
            return [x for x in found if isinstance(x, str)]
    return None


def _scan() -> tuple[dict[str, list[str]], list[tuple[str, int, str, list[str]]], set]:
    """``(templates, formatted, local)``: each template with where it is used; the calls that
    fill fields in (module, line, template, keywords); the unresolved template names."""
    templates: dict[str, list[str]] = {}
    formatted = []
    local = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if name == "rlcourse.i18n":
            continue  # the mechanism itself (its constants are found where they are used)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if "i18n" not in path.read_text(encoding="utf-8"):
            continue
        module = importlib.import_module(name)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            call = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
            if call not in ("tr", "tr_in", "N_", "figure_tr"):
                continue
            args = node.args[1:] if call == "tr_in" else node.args
            found = _resolve(args[0], module)
            if found is None:
                local.add((name, ast.unparse(args[0])))
                continue
            for template in found:
                templates.setdefault(template, []).append(f"{name}:{node.lineno}")
                if call != "N_" and node.keywords:
                    keywords = [k.arg for k in node.keywords]
                    formatted.append((name, node.lineno, template, keywords))
    return templates, formatted, local


TEMPLATES, FORMATTED, LOCAL = _scan()


def _braces(text: str) -> list[str]:
    """The ``{...}`` groups of a template: its fields with their format specs (and, in a
    text without fields, the braces it shows, as in ``R_{t+1}``)."""
    return sorted(re.findall(r"\{[^{}]*\}", text))


def test_the_scan_finds_the_templates() -> None:
    """Checkers and widgets are found (a broken scan would pass every test below)."""
    assert len(TEMPLATES) > 200
    assert PASSED in TEMPLATES and RECOGNISED in TEMPLATES
    assert checks._STATE_REWARD in TEMPLATES  # a module constant
    assert "stopped by you" in TEMPLATES  # a table's value, marked with N_
    assert "Step sweep" in TEMPLATES


def test_every_template_has_a_translation_with_the_same_fields() -> None:
    missing = {t: where for t, where in TEMPLATES.items() if t not in TABLE}
    assert not missing, f"{len(missing)} templates without a zh-CN entry:\n" + "\n".join(
        f"{where[0]}: {t!r}" for t, where in missing.items()
    )
    wrong = [t for t in TEMPLATES if _braces(t) != _braces(TABLE[t])]
    assert not wrong, "fields differ in:\n" + "\n".join(f"{t!r}\n  -> {TABLE[t]!r}" for t in wrong)


def test_every_translation_is_used() -> None:
    stale = sorted(set(TABLE) - set(TEMPLATES))
    assert not stale, "zh-CN entries that no code uses (remove them):\n" + "\n".join(stale)


def test_every_call_fills_in_exactly_the_template_fields() -> None:
    """A call's keywords are the template's fields (its literal braces doubled)."""
    for module, line, template, keywords in FORMATTED:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
        assert all(name.isidentifier() for name in names), (module, line, template)
        assert set(names) == set(keywords), (module, line, template, keywords)


def test_templates_given_by_name_are_known() -> None:
    """A ``tr`` call on a local name translates texts marked where they are written."""
    assert set(LOCAL) <= set(LOCAL_TEMPLATES), sorted(set(LOCAL) - set(LOCAL_TEMPLATES))


def test_every_translation_is_chinese_and_keeps_numbers_and_code() -> None:
    for english, chinese in TABLE.items():
        assert CJK.search(chinese), f"not Chinese: {english!r} -> {chinese!r}"
        numbers = re.compile(r"(?<![\w{])\d+(?:\.\d+)?")
        assert sorted(numbers.findall(english)) == sorted(numbers.findall(chinese)), (
            f"numbers differ: {english!r} -> {chinese!r}"
        )
        code = re.compile(r"`[^`\n]+`")  # inline code, on one line
        assert code.findall(english) == code.findall(chinese), english


# ------------------------------------------------------------------ the checkers
@pytest.fixture
def zh() -> Iterator[None]:
    """Speak zh-CN in the test, with no untranslated template met so far; English after."""
    i18n.set_language("zh-CN")
    i18n.missing.clear()
    try:
        yield
    finally:
        i18n.set_language("en")


def _fail(checker: str, fn: Callable) -> str:
    """The message of ``checker``'s failure on ``fn``, in the current language."""
    with pytest.raises((checks.CheckError, NotImplementedError)) as info:
        getattr(checks, checker)(fn)
    return str(info.value)


def _english_words(words: str) -> bool:
    """Whether ``words`` is English prose (two words), which the Chinese must not keep."""
    return re.search(r"\b[a-z]{3,} [a-z]{3,}\b", words) is not None


def _stub(*args: Any) -> None:
    raise NotImplementedError("Exercise: implement it -- see the equation above")


def _none(*args: Any) -> None:
    return None


@pytest.mark.parametrize(("checker", "buggy", "words", "pitfall"), BUGGY)
def test_a_failing_checker_speaks_chinese(
    checker: str, buggy: Callable, words: str, pitfall: int | None, zh: None
) -> None:
    """The wrong implementations of test_checks.py: the message is Chinese, every template
    met during the check has its translation, and the English message is as before."""
    message = _fail(checker, buggy)
    assert not i18n.missing, f"untranslated: {i18n.missing}"
    assert CJK.search(message), message
    if _english_words(words):
        assert words not in message, message
    i18n.set_language("en")
    english = _fail(checker, buggy)
    assert words in english, english
    assert english != message


@pytest.mark.parametrize("checker", CHECKERS)
@pytest.mark.parametrize("fn", [_stub, _none], ids=["stub", "returns-None"])
def test_every_checker_fails_in_chinese(checker: str, fn: Callable, zh: None) -> None:
    """Every checker, on the student edition's stub (the hint kept) and on a function that
    returns nothing."""
    message = _fail(checker, fn)
    assert not i18n.missing, f"untranslated: {i18n.missing}"
    assert CJK.search(message), message
    if fn is _stub:
        assert "还没有实现" in message and "see the equation above" in message
    i18n.set_language("en")
    english = _fail(checker, fn)
    assert ("not implemented yet" if fn is _stub else checker.removeprefix("check_")) in english


def test_a_crash_and_a_fragment_in_chinese(zh: None) -> None:
    """A student's exception keeps its own text; case names and mistakes are translated."""

    def crashes(V, states, rewards, n, alpha, gamma):
        raise IndexError("index 9 is out of bounds")

    message = _fail("check_n_step_td_episode", crashes)
    assert message == "n_step_td_episode 抛出了 IndexError：index 9 is out of bounds"
    message = _fail("check_value_iteration", lambda P, R, gamma, theta: (torch.zeros(3), None))
    assert message.startswith("value_iteration（两状态 MDP）：结果的形状应为 [2]")


def _run(checker: str, fn: Callable) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        getattr(checks, checker)(fn)
    return out.getvalue()


@pytest.mark.parametrize(
    ("checker", "solution"),
    [(checker, fn) for _, checker, fn in REFERENCES],
    ids=[f"{nb}-{checker}" for nb, checker, _ in REFERENCES],
)
def test_a_passing_checker_prints_its_line_in_chinese(
    checker: str, solution: Callable, zh: None
) -> None:
    """What the checker prints in zh-CN is what the build makes of the English output."""
    chinese = _run(checker, solution)
    assert not i18n.missing
    i18n.set_language("en")
    english = _run(checker, solution)
    assert "checks passed ✓" in english
    assert CJK.search(chinese) and "checks passed" not in chinese
    assert translate_printed(english, "zh-CN") == chinese
    assert translate_printed(english, "en") == english


@pytest.mark.parametrize("solution", [reinforce, reinforce_gamma_t])
def test_the_recognised_form_is_printed_in_chinese(solution: Callable, zh: None) -> None:
    chinese = _run("check_reinforce_loss", solution)
    i18n.set_language("en")
    english = _run("check_reinforce_loss", solution)
    assert english.splitlines()[1].startswith("  recognised the ")
    assert chinese.splitlines()[1].startswith("  识别出的形式：")
    assert CJK.search(chinese.splitlines()[1].removeprefix("  识别出的形式："))
    assert translate_printed(english, "zh-CN") == chinese


def test_translate_printed_leaves_other_lines_alone() -> None:
    text = "gae: all 3 checks passed ✓\nyour own line: all 3 checks passed\n\n"
    assert translate_printed(text, "zh-CN") == (
        tr_in("zh-CN", PASSED, name="gae", n="3") + "\nyour own line: all 3 checks passed\n\n"
    )
    assert tr_in("zh-CN", PASSED, name="gae", n=3) == "gae：全部 3 项检查都通过了 ✓"


# ------------------------------------------------------------------ the widgets
def _labels(dropdown: Any) -> tuple[str, ...]:
    return tuple(dropdown._options_labels)


def test_dp_stepper_in_chinese_and_in_english(zh: None) -> None:
    from rlcourse.widgets import DP_ALGORITHMS, DP_ENVIRONMENTS, DPStepper

    stepper = DPStepper(env="FrozenLake 4x4")  # the English names stay the API
    buttons = [stepper.step_button, stepper.run_button, stepper.reset_button]
    assert [b.description for b in buttons] == ["遍历一次", "运行到收敛", "重置"]
    assert stepper.env_choice.description == "环境"
    assert "例 4.1（4x4，两个角为终止状态）" in _labels(stepper.env_choice)
    assert _labels(stepper.algorithm_choice) == ("价值迭代", "策略迭代", "策略评估（随机策略）")
    assert stepper.algorithm_choice.value == "value iteration"
    stepper.step_button.click()
    stepper.step_button.click()
    assert stepper.sweep == 2 and "已遍历 2 次" in stepper.status.value
    stepper.env_choice.value = "Example 4.1 (4x4, terminal corners)"
    stepper.run_button.click()
    assert stepper.converged and "已收敛" in stepper.status.value
    assert repr(stepper).startswith("DPStepper(env='Example 4.1 (4x4, terminal corners)'")
    assert not i18n.missing

    i18n.set_language("en")
    stepper = DPStepper()
    buttons = [stepper.step_button, stepper.run_button, stepper.reset_button]
    assert [b.description for b in buttons] == ["Step sweep", "Run to convergence", "Reset"]
    assert (stepper.env_choice.description, stepper.algorithm_choice.description) == (
        "environment",
        "algorithm",
    )
    assert stepper.gamma_slider.description == "gamma"
    assert _labels(stepper.env_choice) == tuple(DP_ENVIRONMENTS)
    assert _labels(stepper.algorithm_choice) == DP_ALGORITHMS
    assert stepper.status.value == "<b>sweep 0</b>"


def test_agent_stepper_in_chinese_and_in_english(zh: None) -> None:
    from rlcourse.widgets import AGENT_ENVIRONMENTS, AGENT_METHODS, AgentStepper

    stepper = AgentStepper(env="Windy grid world (Example 6.5)", method="Expected SARSA")
    buttons = [
        stepper.step_button,
        stepper.episode_button,
        stepper.run_button,
        stepper.reset_button,
    ]
    assert [b.description for b in buttons] == ["单步", "走完本幕", "运行 N 幕", "重置"]
    assert _labels(stepper.method_choice) == ("Q 学习", "SARSA", "期望 SARSA")
    assert "有风的网格世界（例 6.5）" in _labels(stepper.env_choice)
    assert "还没有更新" in stepper.update_text.value
    stepper.step_button.click()
    assert stepper.steps == 1
    assert "TD 目标" in stepper.update_text.value and "期望 SARSA" in stepper.status.value
    stepper.method_choice.value = "Q-learning"
    assert stepper.agent.method == "q_learning" and stepper.steps == 0
    assert not i18n.missing

    i18n.set_language("en")
    stepper = AgentStepper()
    buttons = [
        stepper.step_button,
        stepper.episode_button,
        stepper.run_button,
        stepper.reset_button,
    ]
    assert [b.description for b in buttons] == ["Step", "Play episode", "Run N episodes", "Reset"]
    sliders = [stepper.alpha_slider, stepper.epsilon_slider, stepper.gamma_slider]
    assert [s.description for s in sliders] == ["alpha", "epsilon", "gamma"]
    assert _labels(stepper.method_choice) == tuple(AGENT_METHODS)
    assert _labels(stepper.env_choice) == tuple(AGENT_ENVIRONMENTS)
    assert stepper.update_text.value == "<i>no update yet: press Step</i>"


def test_agent_viewer_in_chinese_and_in_english(zh: None) -> None:
    from rlcourse.dqn import DQNAgent
    from rlcourse.nets import QNetwork
    from rlcourse.widgets import PERTURBATIONS, AgentViewer

    torch.manual_seed(0)
    agent = DQNAgent(QNetwork(4, 2, (16,)))
    viewer = AgentViewer(agent, "CartPole-v1", seed=0)
    buttons = [
        viewer.step_button,
        viewer.play_button,
        viewer.pause_button,
        viewer.reset_button,
        viewer.perturb_button,
    ]
    assert [b.description for b in buttons] == ["单步", "播放", "暂停", "重置", "扰动"]
    assert _labels(viewer.perturb_choice)[:2] == ("向左推小车", "向右推小车")
    viewer.step_button.click()
    assert viewer.steps == 1 and "第 1 步" in viewer.status.value
    assert "观测 s" in viewer.info.value and "选这个动作" in viewer.info.value
    viewer.perturb_choice.value = "tilt the pole right"
    viewer.perturb_button.click()
    assert "已扰动：让杆向右倾斜" in viewer.status.value
    while not viewer.done:
        viewer.step()
    assert "本幕结束" in viewer.status.value
    assert not i18n.missing

    i18n.set_language("en")
    viewer = AgentViewer(agent, "CartPole-v1", seed=0)
    buttons = [
        viewer.step_button,
        viewer.play_button,
        viewer.pause_button,
        viewer.reset_button,
        viewer.perturb_button,
    ]
    assert [b.description for b in buttons] == ["Step", "Play", "Pause", "Reset", "Perturb"]
    assert (viewer.seed_box.description, viewer.speed_slider.description) == ("seed", "steps/s")
    assert _labels(viewer.perturb_choice) == tuple(PERTURBATIONS["CartPoleEnv"])
    assert "<b>observation s</b>" in viewer.info.value


def _history(stop_reason: str) -> SimpleNamespace:
    """A small training history with what the dashboard draws (a DQN's)."""
    return SimpleNamespace(
        episodes=[(100 * k, float(k), k) for k in range(1, 30)],
        evaluations=[(1000, 150.0, 20.0), (2000, 480.0, 5.0)],
        confirmations=[(2000, 470.0, 9.0)],
        selected_step=2000,
        held_out_mean=475.5,
        threshold=475.0,
        solved=True,
        train_time=3.25,
        stop_reason=stop_reason,
        losses=[(100, 1.0), (200, 0.5)],
        epsilon=[(100, 1.0), (200, 0.5)],
    )


def test_training_monitor_in_chinese_and_in_english(zh: None) -> None:
    from rlcourse.widgets import TrainingMonitor

    monitor = TrainingMonitor("DQN", min_interval=0.0, max_overhead=1.0)
    assert monitor.stop_button.description == "停止"
    assert monitor.status.value == "<b>DQN</b>：等待第一次更新"
    monitor.stop_button.click()
    assert monitor.stop_requested and monitor.stop_button.description == "正在停止…"
    monitor.finish(None, _history("callback"))
    assert monitor.stop_button.description == "已停止"
    for text in ("已由你停止", "交回第 2,000 步的策略", "留出的幕上的平均回报 475.5（已解决）"):
        assert text in monitor.status.value
    for text in ("回报", "环境步数", "训练的幕", "TD 损失", "试探", "解决：475（虚线）"):
        assert text in monitor.charts.value
    assert not i18n.missing

    i18n.set_language("en")
    monitor = TrainingMonitor("DQN")
    assert monitor.stop_button.description == "Stop"
    assert monitor.status.value == "<b>DQN</b>: waiting for the first update"
    monitor.finish(None, _history("budget"))
    assert monitor.stop_button.description == "Done"
    assert monitor.status.value == (
        "<b>DQN</b> · step 2,000 · 29 training episodes · last evaluation 480.0 · "
        "3.2 s training · <b>ran its whole step budget</b> · handed back the policy of "
        "step 2,000 · held-out mean 475.5 (solved)"
    )
    for text in ("return", "environment steps", "training episodes", "TD loss"):
        assert text in monitor.charts.value
    assert np.isfinite(monitor.draw_time)


# ------------------------------------------------------------------ figures
def test_figure_text_is_english_without_a_chinese_font(monkeypatch: pytest.MonkeyPatch) -> None:
    """A figure speaks Chinese only where a font draws it: otherwise its text stays English
    (no empty boxes), while the rest of the package speaks Chinese."""
    import matplotlib

    from rlcourse import i18n

    monkeypatch.setattr(i18n, "cjk_font", lambda: None)
    i18n.set_language("zh-CN")
    try:
        assert i18n.figure_language() == "en"
        assert i18n.figure_tr("returns so far") == "returns so far"
        assert i18n.tr("returns so far") != "returns so far"
        with i18n.figure_font():
            assert matplotlib.rcParams["font.sans-serif"][0] != "Noto Sans CJK SC"
        monkeypatch.setattr(i18n, "cjk_font", lambda: "Noto Sans CJK SC")
        assert i18n.figure_language() == "zh-CN"
        assert i18n.figure_tr("step {t} of {n}", t=3, n=500) == "第 3 步（共 500 步）"
        with i18n.figure_font():
            assert matplotlib.rcParams["font.sans-serif"][0] == "Noto Sans CJK SC"
        assert matplotlib.rcParams["font.sans-serif"][0] != "Noto Sans CJK SC"  # restored
    finally:
        i18n.set_language("en")
    assert i18n.figure_tr("returns so far") == "returns so far"


def test_cjk_font_is_one_matplotlib_has() -> None:
    from matplotlib import font_manager

    from rlcourse import i18n

    font = i18n.cjk_font()
    installed = {f.name for f in font_manager.fontManager.ttflist}
    assert font is None or (font in installed and font in i18n.CJK_FONTS)
