"""The course's widgets work in a real JupyterLab, driven by headless Chromium.

nbval checks what the kernel prints; this checks what a student sees: the
notebook runs top to bottom in JupyterLab without an error, its widgets render
and answer clicks through the kernel. The test starts its own JupyterLab server
on a copy of ``notebooks/`` and stops it afterwards.

Needs Chromium at /usr/bin/chromium (Debian: ``apt-get install -y chromium``)
and Playwright for Python (``pip install -r requirements-dev.txt``); it never
downloads a browser. Screenshots land in the test's tmp dir and in
``tests/screenshots/`` (git-ignored) for a person to look at.

To cover another widget, add a test that calls :func:`run_notebook`, finds the
widget with :func:`widget_box` and clicks its buttons, as ``test_dp_stepper`` does.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "tests" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

try:
    from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        sync_playwright is None,
        reason="Playwright is not installed: pip install -r requirements-dev.txt",
    ),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium (Debian)",
    ),
]


# --------------------------------------------------------------------------- server
@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server serving a copy of ``notebooks/``."""

    url: str
    token: str
    root: Path

    def notebook_url(self, name: str) -> str:
        # reset: ignore any saved layout, open just this notebook
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, token: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            request = urllib.request.Request(
                f"{url}/api/status", headers={"Authorization": f"token {token}"}
            )
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"JupyterLab did not answer within 60 s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server started here (and, through it, its kernels): SIGTERM, then kill."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _start_lab(tmp: Path, locale: str | None = None) -> Iterator[Lab]:
    """A JupyterLab server on a copy of ``notebooks/``, its interface in ``locale`` (a
    language pack's, e.g. ``zh_CN``; None: English); stopped when the generator closes."""
    root = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    # silence the news/update toast that otherwise covers part of the page
    notification = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    if locale is not None:  # Settings > Language, as a student sets it
        translation = tmp / "settings" / "@jupyterlab" / "translation-extension"
        translation.mkdir(parents=True)
        (translation / "plugin.jupyterlab-settings").write_text(json.dumps({"locale": locale}))
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        f"--LabApp.user_settings_dir={tmp / 'settings'}",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")  # the server refuses to start as root otherwise
    env = dict(
        os.environ,
        # kernels run with this interpreter, which has rlcourse installed
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),  # no user config leaks in
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    log = tmp / "jupyterlab.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, token, proc, log)
        yield Lab(url, token, root)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _start_lab(tmp_path_factory.mktemp("lab"))


@pytest.fixture(scope="module")
def lab_zh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The same, with JupyterLab's interface in Simplified Chinese (its language pack)."""
    yield from _start_lab(tmp_path_factory.mktemp("lab_zh"), locale="zh_CN")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _api(lab: Lab, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(
        f"{lab.url}{path}", method=method, headers={"Authorization": f"token {lab.token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def _new_page(browser: Browser, lab: Lab) -> Iterator[Page]:
    """A fresh browser page; its kernels are shut down afterwards, so each case starts clean."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()
        for session in _api(lab, "/api/sessions"):
            _api(lab, f"/api/sessions/{session['id']}", method="DELETE")


@pytest.fixture
def page(browser: Browser, lab: Lab) -> Iterator[Page]:
    yield from _new_page(browser, lab)


@pytest.fixture
def page_zh(browser: Browser, lab_zh: Lab) -> Iterator[Page]:
    yield from _new_page(browser, lab_zh)


# ------------------------------------------------------------------------- notebook
# JavaScript run in the page; `window.jupyterapp` exists thanks to expose_app_in_browser.
_KERNEL_IDLE = """() => {
    const panel = window.jupyterapp?.shell?.currentWidget;
    const kernel = panel?.sessionContext?.session?.kernel;
    return !!panel?.content?.model && !!kernel
        && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""
_ALL_CELLS_RAN = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const kernel = panel.sessionContext.session?.kernel;
    if (!kernel || kernel.status !== 'idle') return false;
    const cells = panel.content.model.cells;
    for (let i = 0; i < cells.length; i++) {
        const cell = cells.get(i);
        if (cell.type === 'code' && cell.sharedModel.getSource().trim()
            && cell.executionCount == null) return false;
    }
    return true;
}"""
_ERROR_OUTPUTS = """() => {
    const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
    const errors = [];
    for (let i = 0; i < cells.length; i++) {
        const cell = cells.get(i);
        if (cell.type !== 'code') continue;
        for (const out of cell.outputs.toJSON()) {
            if (out.output_type === 'error') {
                errors.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
            }
        }
    }
    return errors;
}"""


def _menu(page: Page, menu: str, command: str) -> None:
    page.locator(f"li.lm-MenuBar-item:has-text('{menu}')").click()
    page.locator(f".lm-Menu-item[data-command='{command}']").click()


def wait_for_kernel(page: Page) -> None:
    """Wait until the kernel is idle: every message a click caused has come back."""
    page.wait_for_function(_KERNEL_IDLE, timeout=60_000, polling=100)


#: the names of the menus run_notebook uses, in JupyterLab's English and Chinese interfaces
MENUS = {"en": {"Edit": "Edit", "Run": "Run"}, "zh_CN": {"Edit": "编辑", "Run": "运行"}}


def run_notebook(
    page: Page, lab: Lab, name: str, timeout_s: float = 120, locale: str = "en"
) -> Page:
    """Open ``name`` in JupyterLab, clear its outputs, Run All, wait, assert no errors."""
    page.goto(lab.notebook_url(name))
    # running before the kernel is ready switches kernels and runs only the first cell
    wait_for_kernel(page)
    menus = MENUS[locale]
    _menu(page, menus["Edit"], "editmenu:clear-all")  # stored prompts [1]..[n] would look finished
    _menu(page, menus["Run"], "runmenu:run-all")
    page.wait_for_function(_ALL_CELLS_RAN, timeout=timeout_s * 1000, polling=250)
    errors = page.evaluate(_ERROR_OUTPUTS)
    assert not errors, f"{name} raised in JupyterLab: {errors}"
    return page


def widget_box(page: Page, *buttons: str) -> Locator:
    """The one widget VBox that holds buttons with all these texts."""
    box = page.locator(".widget-vbox")
    for text in buttons:
        box = box.filter(has=page.locator("button.jupyter-button", has_text=text))
    expect(box).to_have_count(1)
    expect(box).to_be_visible()
    return box


def button(box: Locator, text: str) -> Locator:
    return box.locator("button.jupyter-button", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$"))


def assert_widgets_rendered(page: Page) -> None:
    expect(page.get_by_text("Error displaying widget")).to_have_count(0)


def assert_no_overflow(box: Locator) -> None:
    """No control or figure sticks out of the widget, and no button's text is cut off."""
    problems = box.evaluate(
        """box => {
            const right = box.getBoundingClientRect().right + 1;
            const problems = [];
            for (const e of box.querySelectorAll('button, select, input, img, .widget-html')) {
                const text = (e.tagName === 'SELECT' ? e.value : e.textContent || '').trim();
                const name = `${e.tagName.toLowerCase()} "${text}"`;
                if (e.getBoundingClientRect().right > right) problems.push(`${name} sticks out`);
                if (e.tagName === 'BUTTON' && e.scrollWidth > e.clientWidth + 1)
                    problems.push(`${name} is cut off`);
            }
            return problems;
        }"""
    )
    assert not problems, problems


def image_src(box: Locator) -> str:
    image = box.locator("img.widget-image")
    expect(image).to_have_count(1)
    # the PNG decoded and has a size
    assert image.evaluate("img => img.complete && img.naturalWidth > 0"), "image not loaded"
    return image.get_attribute("src") or ""


def screenshots(page: Page, box: Locator, name: str, folder: Path) -> list[Path]:
    """Full page and widget screenshots, in ``folder`` and copied to tests/screenshots/."""
    folder.mkdir(parents=True, exist_ok=True)
    SCREENSHOTS.mkdir(exist_ok=True)
    box.scroll_into_view_if_needed()
    paths = [folder / f"{name}_page.png", folder / f"{name}_widget.png"]
    page.screenshot(path=paths[0], full_page=True)
    box.screenshot(path=paths[1])
    for path in paths:
        shutil.copy(path, SCREENSHOTS / path.name)
    return paths


# ---------------------------------------------------------------------------- cases
def test_dp_stepper(lab: Lab, page: Page, tmp_path: Path) -> None:
    """Chapter 2's DPStepper: Step sweep x3 goes sweep 0 -> 3; Run to convergence converges."""
    run_notebook(page, lab, "02_dynamic_programming.ipynb")
    assert_widgets_rendered(page)
    box = widget_box(page, "Step sweep", "Run to convergence", "Reset")
    expect(box.locator(".widget-dropdown select")).to_have_count(2)
    expect(box.locator(".widget-slider")).to_have_count(1)
    for label in ("environment", "algorithm", "gamma"):
        expect(box.locator(".widget-label", has_text=label)).to_have_count(1)
    status = box.locator(".widget-html")
    expect(status).to_have_text(re.compile(r"^\s*sweep 0\b"))
    src_before = image_src(box)
    screenshots(page, box, "02_dp_stepper_sweep0", tmp_path / "screenshots")

    step = button(box, "Step sweep")
    for k in (1, 2, 3):
        step.click()
        # waits for the round trip through the kernel
        expect(status).to_have_text(re.compile(rf"^\s*sweep {k}\b"))
    wait_for_kernel(page)  # the status arrives before the redrawn image
    assert image_src(box) != src_before, "the heatmap was not redrawn"
    assert_no_overflow(box)
    screenshots(page, box, "02_dp_stepper_sweep3", tmp_path / "screenshots")

    button(box, "Run to convergence").click()
    expect(status).to_contain_text("converged", timeout=30_000)
    wait_for_kernel(page)
    assert_widgets_rendered(page)
    assert_no_overflow(box)
    screenshots(page, box, "02_dp_stepper_converged", tmp_path / "screenshots")


def test_agent_stepper(lab: Lab, page: Page, tmp_path: Path) -> None:
    """Chapter 4's AgentStepper: Step x3 goes step 0 -> 3 with the update written out and the
    figure redrawn; Play episode ends episode 1."""
    run_notebook(page, lab, "04_q_learning_and_sarsa.ipynb", timeout_s=240)
    assert_widgets_rendered(page)
    box = widget_box(page, "Step", "Play episode", "Run N episodes", "Reset")
    expect(box.locator(".widget-slider")).to_have_count(3)
    for label in ("environment", "alpha", "epsilon", "gamma"):
        expect(box.locator(".widget-label", has_text=label)).to_have_count(1)
    status = box.locator(".widget-html", has_text="episode")
    update = box.locator(".widget-html", has_text="TD target")
    expect(status).to_contain_text("episode 0")
    expect(status).to_contain_text("step 0")
    src_before = image_src(box)
    screenshots(page, box, "04_agent_stepper_step0", tmp_path / "screenshots")

    step = button(box, "Step")
    for k in (1, 2, 3):
        step.click()
        expect(status).to_contain_text(f"step {k}")
    expect(update).to_contain_text("TD error")
    expect(update).to_contain_text("Q(S, A)")
    wait_for_kernel(page)
    assert image_src(box) != src_before, "the Q-value heatmap was not redrawn"
    assert_no_overflow(box)
    screenshots(page, box, "04_agent_stepper_step3", tmp_path / "screenshots")

    button(box, "Play episode").click()
    expect(status).to_contain_text("episode 1", timeout=30_000)
    expect(status).to_contain_text("last return")
    wait_for_kernel(page)
    assert_widgets_rendered(page)
    assert_no_overflow(box)
    screenshots(page, box, "04_agent_stepper_episode1", tmp_path / "screenshots")


_ADD_AND_RUN_CELL = """async (code) => {
    const app = window.jupyterapp;
    const notebook = app.shell.currentWidget.content;
    notebook.activeCellIndex = notebook.widgets.length - 1;
    await app.commands.execute('notebook:insert-cell-below');
    notebook.activeCell.model.sharedModel.setSource(code);
    app.commands.execute('notebook:run-cell');  // not awaited: the test watches it run
}"""

# a training long enough to be stopped by hand (it would take minutes to its budget)
_MONITOR_CELL = """\
browser_monitor = widgets.TrainingMonitor("browser test: DQN")
display(browser_monitor)
browser_agent, browser_history = await browser_monitor.run(
    dqn.train, "CartPole-v1", dqn.DQNConfig(total_steps=1_000_000, early_stop=False), seed=3
)
print("stop reason:", browser_history.stop_reason)
start_state = gym.make("CartPole-v1").reset(seed=0)[0]
print("greedy action at a start state:", browser_agent.act(start_state))
print("held-out mean computed:", browser_history.held_out_mean is not None)
"""


def _episodes_shown(status: Locator) -> int:
    match = re.search(r"([\d,]+) training episodes", status.text_content())
    return int(match.group(1).replace(",", "")) if match else -1


def test_deep_agent_viewer_and_monitor(lab: Lab, page: Page, tmp_path: Path) -> None:
    """Chapter 5: Step on the AgentViewer changes the frame and the Q-values shown; a
    training under a TrainingMonitor redraws its curve live, and Stop ends it with an
    agent that acts."""
    run_notebook(page, lab, "05_dqn.ipynb", timeout_s=300)
    assert_widgets_rendered(page)
    shots = tmp_path / "screenshots"

    viewer = widget_box(page, "Step", "Play", "Pause", "Reset", "Perturb")
    status = viewer.locator(".widget-html", has_text="return so far")
    decision = viewer.locator(".widget-html", has_text="Q(s, a)")
    expect(decision).to_have_count(1)
    viewer.scroll_into_view_if_needed()  # cells out of view are not rendered (no text)
    step = int(re.search(r"step (\d+)", status.text_content()).group(1))
    screenshots(page, viewer, "05_agent_viewer_before", shots)
    frame = image_src(viewer)
    for _ in range(5):  # one step of CartPole (0.02 s) may move the picture by under a pixel
        q_text = decision.text_content()
        button(viewer, "Step").click()
        step += 1
        expect(status).to_contain_text(f"step {step} ")
        wait_for_kernel(page)
        assert decision.text_content() != q_text, "the Q-values shown did not change"
    assert image_src(viewer) != frame, "the frame did not change"
    assert_no_overflow(viewer)
    screenshots(page, viewer, "05_agent_viewer_stepped", shots)

    page.evaluate(_ADD_AND_RUN_CELL, _MONITOR_CELL)
    monitor = widget_box(page, "Stop")
    monitor.scroll_into_view_if_needed()
    monitor_status = monitor.locator(".widget-hbox .widget-html")  # beside the Stop button
    charts = monitor.locator("svg")
    expect(charts).to_have_count(3, timeout=60_000)  # the learning curve, loss, epsilon
    first = _episodes_shown(monitor_status)
    page.wait_for_function(
        """([box, n]) => {
            const m = box.textContent.match(/([\\d,]+) training episodes/);
            return m && parseInt(m[1].replace(/,/g, '')) > n;
        }""",
        arg=[monitor.element_handle(), first],
        timeout=60_000,
    )
    assert _episodes_shown(monitor_status) > first, "the dashboard was not redrawn"
    screenshots(page, monitor, "05_training_monitor_live", shots)

    button(monitor, "Stop").click()
    expect(monitor_status).to_contain_text("stopped by you", timeout=120_000)
    page.wait_for_function(_ALL_CELLS_RAN, timeout=120_000, polling=250)
    output = page.locator(".jp-Cell").last.locator(".jp-OutputArea-output").all_text_contents()
    text = "\n".join(output)
    assert "stop reason: callback" in text, text
    assert re.search(r"greedy action at a start state: [01]\b", text), text
    assert "held-out mean computed: True" in text, text
    assert not page.evaluate(_ERROR_OUTPUTS)
    screenshots(page, monitor, "05_training_monitor_stopped", shots)


_CJK = re.compile(r"[\u4e00-\u9fff]")


def test_zh_cn_notebook_in_the_chinese_interface(
    lab_zh: Lab, page_zh: Page, tmp_path: Path
) -> None:
    """The zh-CN edition's chapter 2 in JupyterLab with its Chinese language pack: the
    interface, the notebook and its DP stepper speak Chinese, and the stepper steps."""
    from rlcourse.i18n import tr_in

    page = page_zh
    run_notebook(page, lab_zh, "zh-CN/02_dynamic_programming.ipynb", locale="zh_CN")
    for menu in ("文件", "编辑", "运行", "内核"):  # JupyterLab's own menus, from the language pack
        expect(page.locator("li.lm-MenuBar-item", has_text=menu)).to_have_count(1)
    expect(page.locator(".jp-MarkdownCell h1").first).to_contain_text("动态规划")
    assert_widgets_rendered(page)
    labels = [tr_in("zh-CN", text) for text in ("Step sweep", "Run to convergence", "Reset")]
    assert all(_CJK.search(label) for label in labels), labels
    box = widget_box(page, *labels)
    box.scroll_into_view_if_needed()
    status = box.locator(".widget-html").first
    text, frame = status.text_content(), image_src(box)
    assert _CJK.search(text), f"the stepper's status is not in Chinese: {text}"
    screenshots(page, box, "zh_02_dp_stepper_start", tmp_path / "screenshots")
    for _ in range(3):
        button(box, labels[0]).click()
        wait_for_kernel(page)
    expect(status).not_to_have_text(text)
    assert image_src(box) != frame, "the heatmap was not redrawn"
    assert _CJK.search(status.text_content())
    assert_no_overflow(box)
    screenshots(page, box, "zh_02_dp_stepper_stepped", tmp_path / "screenshots")
