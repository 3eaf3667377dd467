"""`make test-browser`: the course in JupyterLab, in a real Chromium, as a learner sees it.

- Chromium is Debian's (installed with apt-get when missing); Playwright drives it through
  `executable_path`, so no browser is downloaded.
- JupyterLab starts with `make lab`'s own command on 127.0.0.1 with a token, on a scratch copy of
  the course's notebooks (your notebooks and workbooks are never opened, so never saved), with
  its own COURSE_HOME (your progress is never touched), and is stopped by its process id.
- Lessons 00, 02, 05, 09, 10 and 11 run top to bottom. Any error output, or any code cell that
  never ran, fails. Every plot must render as an image and every progress bar as a widget (seen
  drawn, or sent by the kernel: a loaded machine may replace a quick bar before it is drawn).
- No ✅/❌/⏳/💡 line may break inside a word: each rendered line box ends at a space or a hyphen.
- No request of the page may answer 404 (the language-server extension is off on both sides).
- Each lesson is saved and reloaded: "Error displaying widget" anywhere fails.
- Workbook 00: a wrong answer typed into q1 must get ❌, a right one ✅, and `make progress`
  must then show q1 correct.
- Screenshots go to .course/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import tasks  # noqa: E402 -- make lab's own command and settings

WORK = ROOT / ".course" / "browser-test"
SCRATCH = WORK / "course"           # what JupyterLab serves: a copy of the notebooks
HOME = WORK / "home"                # COURSE_HOME: progress and databases of this test only
SHOTS = ROOT / ".course" / "screenshots"
LESSONS = ["00-welcome", "02-concurrency", "05-asyncpg-bulk-and-types", "09-fastapi-in-process",
           "10-performance-and-scale", "11-testing-and-capstone"]
WORKBOOK = "00-welcome"
CELL_LIMIT = 600  # seconds for one notebook's Run All; lesson 05 loads 300k rows, lesson 10 benchmarks

WRONG_MMSS = 'def mmss(milliseconds: int) -> str:\n    return f"{milliseconds // 60000}:{milliseconds // 1000 % 60}"\n'


class Failed(Exception):
    pass


def say(text: str) -> None:
    print(f"[browser {time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---------------------------------------------------------------- Chromium and Playwright

def _emoji_font() -> bool:
    if not shutil.which("fc-list"):
        return True  # cannot tell; the screenshots may show boxes for ✅
    listed = subprocess.run(["fc-list"], capture_output=True, text=True).stdout.lower()
    return "emoji" in listed


def _apt_install(packages: list[str]) -> bool:
    log = WORK / "apt.log"
    say(f"installing Debian's {' and '.join(packages)} with apt-get (log in {log.relative_to(ROOT)})")
    with log.open("a") as out:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        return (subprocess.run(["apt-get", "update", "-qq"], stdout=out, stderr=out, env=env).returncode == 0
                and subprocess.run(["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600", *packages],
                                   stdout=out, stderr=out, env=env).returncode == 0)


def chromium() -> str:
    """The system Chromium, installed with apt-get when missing; one line and exit 1 if impossible.

    An emoji font comes with it when none is installed, so that ✅ and ❌ show in screenshots."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    can_apt = bool(shutil.which("apt-get")) and os.geteuid() == 0
    missing = ([] if found else ["chromium"]) + ([] if _emoji_font() else ["fonts-noto-color-emoji"])
    if missing and can_apt:
        _apt_install(missing)
        found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if can_apt:
        why = "apt-get could not install it (see .course/browser-test/apt.log)"
    elif shutil.which("apt-get"):
        why = "apt-get needs root: run `sudo apt-get install chromium` once"
    else:
        why = "this system has no apt-get: install Chromium with your package manager"
    print(f"make test-browser needs Chromium, which is not installed, and {why}.", file=sys.stderr)
    raise SystemExit(1)


# ---------------------------------------------------------------- JupyterLab

def lab_command() -> list[str]:
    """`make lab`'s own command line: tasks.py's, run with this venv's Python."""
    return tasks.lab_command(Path(sys.executable))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_scratch() -> None:
    """A copy of the lessons, workbooks and solutions for JupyterLab to serve and save."""
    shutil.rmtree(SCRATCH, ignore_errors=True)
    for folder in ("notebooks", "exercises", "solutions"):
        shutil.copytree(ROOT / folder, SCRATCH / folder,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    HOME.mkdir(parents=True, exist_ok=True)
    (HOME / "progress.json").unlink(missing_ok=True)  # the databases stay: a second run starts faster


class Lab:
    def __init__(self) -> None:
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        command = [arg for arg in lab_command() if not arg.startswith("--ServerApp.root_dir=")]
        command += [f"--ServerApp.root_dir={SCRATCH}", "--no-browser", "--ServerApp.ip=127.0.0.1",
                    f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                    f"--IdentityProvider.token={self.token}", "--LabApp.expose_app_in_browser=True",
                    f"--LabApp.user_settings_dir={WORK / 'user-settings'}",
                    f"--LabApp.workspaces_dir={WORK / 'workspaces'}"]
        shutil.rmtree(WORK / "user-settings", ignore_errors=True)
        shutil.rmtree(WORK / "workspaces", ignore_errors=True)
        env = {**tasks.lab_env(), "COURSE_HOME": str(HOME), "JUPYTER_RUNTIME_DIR": str(WORK / "runtime")}
        self.log = (WORK / "jupyterlab.log").open("w")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(command, cwd=SCRATCH, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.wait_ready()

    def wait_ready(self, limit: float = 120) -> None:
        import urllib.request

        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Failed(f"JupyterLab exited with {self.process.returncode}; see .course/browser-test/jupyterlab.log")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=5):
                    say(f"JupyterLab answers after {time.perf_counter() - self.started:.1f} s")
                    return
            except OSError:
                time.sleep(0.2)
        raise Failed(f"JupyterLab did not answer within {limit:.0f} s")

    def stop(self) -> None:
        """Stop this server, and the kernels it started, by its own process id."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: only what it started
                self.process.wait(timeout=10)
        self.log.close()


# ---------------------------------------------------------------- the notebook in the page

JS_PANEL = "const panel = window.jupyterapp.shell.currentWidget;"

JS_STATE = JS_PANEL + """
const kernel = panel.sessionContext.session?.kernel;
return {
  kernel: kernel ? kernel.status : 'none',
  pending: panel.content.widgets.filter(c => c.model.type === 'code' && c.promptNode &&
                                        c.promptNode.textContent.includes('*')).length,
  cells: panel.content.widgets.map((c, index) => ({
    index,
    type: c.model.type,
    source: c.model.sharedModel.getSource(),
    count: c.model.type === 'code' ? c.model.executionCount : null,
    tags: c.model.getMetadata('tags') || [],
    outputs: c.model.type === 'code' ? c.model.outputs.toJSON() : [],
  })),
};
"""


# Playwright's answer when the page dropped an evaluate's promise (seen once under heavy load,
# reading a panel's state): the page is fine, and the same call a moment later succeeds. Every
# call through js() reads state or sets the active cell, so asking again is safe.
DROPPED = ("Resulting promise was garbage collected", "Execution context was destroyed")


def evaluate(page, expression: str, arg=None):
    """page.evaluate(), asked again (twice at most) when the page dropped the call's promise."""
    for attempt in range(3):
        try:
            return page.evaluate(expression, arg)
        except Exception as exc:
            if attempt == 2 or not any(text in str(exc) for text in DROPPED):
                raise
            page.wait_for_timeout(500)
    return None


def js(page, body: str, arg=None):
    return evaluate(page, f"async (arg) => {{ {body} }}", arg)


def open_notebook(page, lab: Lab, path: str) -> None:
    page.goto(f"{lab.url}/lab/tree/{path}?token={lab.token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget &&"
                           " window.jupyterapp.shell.currentWidget.content &&"
                           " window.jupyterapp.shell.currentWidget.content.widgets &&"
                           " window.jupyterapp.shell.currentWidget.content.widgets.length > 0", timeout=90_000)
    js(page, JS_PANEL + "await panel.context.ready; await panel.sessionContext.ready;")
    page.wait_for_function("() => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel;"
                           " return k && k.status === 'idle'; }", timeout=90_000)


def command(page, name: str) -> None:
    js(page, "await window.jupyterapp.commands.execute(arg);", name)


def wait_idle(page, limit: float, on_widget=None) -> dict:
    """Wait until no cell is queued or running and the kernel is idle, three times in a row.

    `on_widget(cell index)` is called once if a progress-bar widget is on screen meanwhile."""
    deadline, calm = time.monotonic() + limit, 0
    while time.monotonic() < deadline:
        if on_widget is not None:
            index = js(page, JS_PANEL + """
                const i = panel.content.widgets.findIndex(c => c.node.querySelector('.widget-hprogress .progress-bar'));
                return i;""")
            if index >= 0:
                on_widget(index)
                on_widget = None
        state = js(page, JS_STATE)
        calm = calm + 1 if state["kernel"] == "idle" and state["pending"] == 0 else 0
        if calm >= 3:
            return state
        time.sleep(0.5 if on_widget is None else 0.1)  # a bar may be on screen for a second only
    raise Failed(f"the notebook was still running after {limit:.0f} s")


def text_of(output: dict) -> str:
    if output.get("output_type") == "stream":
        text = output.get("text", "")
    else:
        text = output.get("data", {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else text


def shoot(page, name: str, shots: list[Path], cell: int | None = None) -> None:
    if cell is not None:
        js(page, JS_PANEL + "const c = panel.content.widgets[arg]; panel.content.activeCellIndex = arg;"
                            " await panel.content.scrollToItem(arg, 'start'); c.node.scrollIntoView({block: 'start'});",
           cell)
        page.wait_for_timeout(600)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    shots.append(path)


WATCH_WIDGETS = JS_PANEL + """
window.__course = {progress: 0, widgetErrors: 0, widgetsSent: 0};
// what the kernel sends, whether or not the page drew it before the bar closed and became text
panel.sessionContext.iopubMessage.connect((_, msg) => {
  const data = msg.content && msg.content.data;
  if (data && 'application/vnd.jupyter.widget-view+json' in data) window.__course.widgetsSent += 1;
});
new MutationObserver(() => {
  if (document.querySelector('.jp-OutputArea .widget-hprogress .progress-bar')) window.__course.progress += 1;
  if (document.body.textContent.includes('Error displaying widget')) window.__course.widgetErrors += 1;
}).observe(document.body, {childList: true, subtree: true, characterData: true});
"""


def check_images(page, state: dict, where: str) -> int:
    """Every image output renders: an <img> that loaded, with a size."""
    count = 0
    for cell in state["cells"]:
        images = [o for o in cell["outputs"] if any(k.startswith("image/") for k in o.get("data", {}))]
        if not images:
            continue
        js(page, JS_PANEL + "await panel.content.scrollToItem(arg, 'center');"
                            " panel.content.widgets[arg].node.scrollIntoView({block: 'center'});", cell["index"])
        page.wait_for_timeout(300)
        ok = js(page, JS_PANEL + """
            const imgs = [...panel.content.widgets[arg].node.querySelectorAll('.jp-OutputArea-output img')];
            await Promise.all(imgs.map(i => i.decode().catch(() => null)));
            return imgs.map(i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0);
        """, cell["index"])
        if len(ok) != len(images) or not all(ok):
            raise Failed(f"{where} cell {cell['index']}: {len(images)} plot(s) stored, {sum(ok)} rendered")
        count += len(images)
    return count


JS_LINE_BREAKS = JS_PANEL + """
// Each rendered line of a ✅/❌/⏳/💡 output must end at a space or a hyphen, never inside a word.
const bad = [];
let lines = 0;
const index = arg, cell = panel.content.widgets[arg];
{
  for (const out of cell.node.querySelectorAll('.jp-OutputArea-output')) {
    if (!/^\\s*(✅|❌|⏳|💡)/u.test(out.textContent)) continue;
    const walker = document.createTreeWalker(out, NodeFilter.SHOW_TEXT);
    const chars = [];  // [character, top of its line box]
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (let i = 0; i < node.data.length; i++) {
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const rect = range.getClientRects()[0];
        if (rect) chars.push([node.data[i], rect.top]);
      }
    }
    for (let i = 1; i < chars.length; i++) {
      const [c, top] = chars[i], [before, topBefore] = chars[i - 1];
      if (top <= topBefore + 2) continue;  // same line
      lines += 1;
      if (/\\s/.test(before) || /\\s/.test(c) || /[-‐–—]/.test(before)) continue;
      const at = chars.slice(Math.max(0, i - 12), i + 12).map(x => x[0]).join('');
      bad.push(`cell ${index}: "${at.slice(0, Math.min(12, i))}|${at.slice(Math.min(12, i))}"`);
    }
  }
}
return {bad, lines};
"""


def check_line_breaks(page, where: str) -> tuple[int, int | None]:
    """Fail if a ✅/❌/⏳/💡 output wraps inside a word; return how many line breaks were checked,
    and the first cell that shows such a line.

    Each such cell is scrolled into view first: JupyterLab lays out only the cells near the view."""
    state, lines, first = js(page, JS_STATE), 0, None
    for cell in state["cells"]:
        if not any(text_of(o).lstrip()[:1] in "✅❌⏳💡" and text_of(o).strip() for o in cell["outputs"]):
            continue
        js(page, JS_PANEL + "await panel.content.scrollToItem(arg, 'center');"
                            " panel.content.widgets[arg].node.scrollIntoView({block: 'center'});", cell["index"])
        page.wait_for_timeout(300)
        found = js(page, JS_LINE_BREAKS, cell["index"])
        if found["bad"]:
            raise Failed(f"{where}: a line breaks inside a word: {found['bad'][:3]}")
        lines += found["lines"]
        first = cell["index"] if first is None else first
    return lines, first


def run_lesson(page, lab: Lab, lesson: str, shots: list[Path]) -> str:
    path = f"notebooks/{lesson}.ipynb"
    started = time.perf_counter()
    open_notebook(page, lab, path)
    js(page, WATCH_WIDGETS)
    if evaluate(page, "() => document.body.textContent.includes('Jupyter news')"):
        shoot(page, f"{lesson}-FAILED-news", shots)
        raise Failed("JupyterLab asks about Jupyter news: the course's .jupyter/ settings were not applied")
    command(page, "notebook:clear-all-cell-outputs")  # stored outputs gone: every output below is this run's
    state = js(page, JS_STATE)
    if any(c["outputs"] or c["count"] for c in state["cells"] if c["type"] == "code"):
        raise Failed(f"{path}: clearing outputs did not clear them")
    command(page, "notebook:run-all-cells")
    page.wait_for_timeout(1000)
    state = wait_idle(page, CELL_LIMIT, on_widget=lambda index: shoot(page, f"{lesson}-progress-widget", shots, index))
    problems = []
    for cell in state["cells"]:
        if cell["type"] != "code" or not cell["source"].strip():
            continue
        if cell["count"] is None:
            problems.append(f"cell {cell['index']} never ran")
        for output in cell["outputs"]:
            if output.get("output_type") == "error" and "raises-exception" not in cell["tags"]:
                problems.append(f"cell {cell['index']} raised {output.get('ename')}: {output.get('evalue', '')[:200]}")
    if problems:
        shoot(page, f"{lesson}-FAILED", shots)
        raise Failed(f"{path}: " + "; ".join(problems[:5]))
    images = check_images(page, state, path)
    breaks, explained = check_line_breaks(page, path)
    if explained is not None:
        shoot(page, f"{lesson}-check-or-explain-line", shots, explained)
    rich = [c["index"] for c in state["cells"] if any("text/markdown" in o.get("data", {}) for o in c["outputs"])]
    for index in rich:  # hints, the progress table: rendered as Markdown, not shown as text
        rendered = js(page, JS_PANEL + "return panel.content.widgets[arg].node.querySelectorAll("
                                       "'.jp-OutputArea-output.jp-RenderedMarkdown').length;", index)
        if not rendered:
            raise Failed(f"{path} cell {index}: a Markdown output was not rendered as Markdown")
    hint = next((c["index"] for c in state["cells"] if ".hint(" in c["source"] and c["index"] in rich), None)
    if hint is not None:
        shoot(page, f"{lesson}-hint", shots, hint)
    seen = evaluate(page, "() => window.__course")
    bars = [c["index"] for c in state["cells"] if any("100%|" in text_of(o) for o in c["outputs"])]
    if "tqdm" in " ".join(c["source"] for c in state["cells"]):
        if seen["progress"] == 0 and seen["widgetsSent"] == 0:
            raise Failed(f"{path}: no progress-bar widget was drawn, or even sent by the kernel, while it ran")
        if not bars:
            raise Failed(f"{path}: no finished progress bar was left as text")
    table = next((c["index"] for c in state["cells"] if "progress_table()" in c["source"]), None)
    shoot(page, f"{lesson}-after-run", shots, next(iter(bars), table))
    first_plot = next((c["index"] for c in state["cells"]
                       if any("image/png" in o.get("data", {}) for o in c["outputs"])), None)
    if first_plot is not None:
        shoot(page, f"{lesson}-plot", shots, first_plot)

    # save, reload with the kernel still running, then again with no kernel
    command(page, "docmanager:save")
    page.wait_for_timeout(1500)
    for when in ("reloaded", "reloaded-no-kernel"):
        if when == "reloaded-no-kernel":
            js(page, JS_PANEL + "await panel.sessionContext.shutdown();")
            page.goto(f"{lab.url}/lab/tree/{path}?token={lab.token}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget &&"
                                   " window.jupyterapp.shell.currentWidget.content.widgets.length > 0",
                                   timeout=90_000)
        else:
            open_notebook(page, lab, path)
        page.wait_for_timeout(2500)
        if bars:
            js(page, JS_PANEL + "await panel.content.scrollToItem(arg, 'center');", bars[0])
            page.wait_for_timeout(800)
        if evaluate(page, "() => document.body.textContent.includes('Error displaying widget')"):
            shoot(page, f"{lesson}-FAILED-{when}", shots, bars[0] if bars else None)
            raise Failed(f"{path}: 'Error displaying widget' after a save and reload ({when})")
        shoot(page, f"{lesson}-{when}", shots, bars[0] if bars else None)
    js(page, JS_PANEL + "if (panel.sessionContext.session) await panel.sessionContext.shutdown();")
    command(page, "application:close-all")
    code = sum(1 for c in state["cells"] if c["type"] == "code")
    return (f"{path}: {code} code cells ran, no errors; {images} plot(s) rendered; "
            f"{breaks} line break(s) of ✅/❌/⏳/💡 lines, all between words; "
            f"{'a progress widget drawn and left as text; ' if bars else ''}"
            f"no widget error after save and reload ({time.perf_counter() - started:.0f} s)")


def type_into_cell(page, index: int, code: str) -> None:
    """Click into a cell's editor, select everything, and type `code` in its place."""
    js(page, JS_PANEL + "await panel.content.scrollToItem(arg, 'center');", index)
    panel = js(page, JS_PANEL + "return panel.id;")
    editor = page.locator(f"[id='{panel}'] .jp-Notebook .jp-Cell").nth(index).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)


def run_cell_and_check(page, index: int, check: int, expect: str, limit: float = 60) -> str:
    """Shift+Enter in cell `index` (the answer), then in the check cell below; return its line."""
    js(page, JS_PANEL + "panel.content.activeCellIndex = arg; panel.content.mode = 'edit';", index)
    page.keyboard.press("Shift+Enter")
    page.wait_for_timeout(500)
    js(page, JS_PANEL + "panel.content.activeCellIndex = arg; panel.content.mode = 'command';", check)
    page.keyboard.press("Shift+Enter")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        state = wait_idle(page, limit)
        lines = [text_of(o).strip() for o in state["cells"][check]["outputs"]]
        line = next((text for text in lines if text[:1] in "✅❌⏳⚠"), "")
        if line.startswith(expect):
            return line
        time.sleep(0.5)
    raise Failed(f"workbook check cell {check}: expected {expect}, got {line or lines!r}")


def work_the_workbook(page, lab: Lab, shots: list[Path]) -> str:
    path = f"exercises/{WORKBOOK}-workbook.ipynb"
    open_notebook(page, lab, path)
    command(page, "notebook:clear-all-cell-outputs")
    command(page, "notebook:run-all-cells")
    page.wait_for_timeout(1000)
    state = wait_idle(page, CELL_LIMIT)
    answer = next(c["index"] for c in state["cells"] if c["source"].startswith("def mmss("))
    check = next(c["index"] for c in state["cells"] if "ex.q1.check(mmss)" in c["source"])
    stub = [text_of(o) for o in state["cells"][check]["outputs"]]
    if not any(text.startswith("⏳ q1") for text in stub):
        raise Failed(f"{path}: the stub's check printed {stub!r}, not ⏳")

    from course.checking.solutions import solution_source

    type_into_cell(page, answer, WRONG_MMSS)
    wrong = run_cell_and_check(page, answer, check, "❌ q1")
    shoot(page, "workbook-00-wrong-answer", shots, answer)
    type_into_cell(page, answer, solution_source("00", "mmss") + "\n")
    right = run_cell_and_check(page, answer, check, "✅ q1")
    shoot(page, "workbook-00-right-answer", shots, answer)
    check_line_breaks(page, path)  # the ✅ line and the ⏳ lines of the other stubs

    # the reference solution, asked for in a new cell: a heading and highlighted Python
    js(page, JS_PANEL + "panel.content.activeCellIndex = arg; panel.content.mode = 'command';", check)
    command(page, "notebook:insert-cell-below")
    page.keyboard.press("Enter")  # edit mode in the new cell
    page.keyboard.insert_text("ex.q1.solution()")
    page.keyboard.press("Shift+Enter")
    state = wait_idle(page, 60)
    shown = js(page, JS_PANEL + """
        const node = panel.content.widgets[arg].node;
        return {heading: node.querySelector('.jp-RenderedMarkdown h4')?.textContent || '',
                highlighted: node.querySelectorAll('.jp-RenderedMarkdown pre span').length};""", check + 1)
    if "reference solution" not in shown["heading"] or not shown["highlighted"]:
        raise Failed(f"{path}: ex.q1.solution() did not render as a heading and highlighted code: {shown}")
    shoot(page, "workbook-00-solution", shots, check + 1)
    command(page, "docmanager:save")
    js(page, JS_PANEL + "await panel.sessionContext.shutdown();")

    progress = subprocess.run(["make", "-s", "progress"], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "COURSE_HOME": str(HOME)}, timeout=120)
    row = next((line for line in progress.stdout.splitlines() if line.startswith("00      q1 ")), "")
    if "✅ correct" not in row:
        raise Failed(f"make progress does not show 00 q1 correct: {row or progress.stdout[-500:]!r}")
    (SHOTS / "make-progress.txt").write_text(progress.stdout)
    return f"{path}: wrong answer -> {wrong[:70]}...; right answer -> {right[:60]}; make progress: {row.strip()}"


# ---------------------------------------------------------------- main

def main(only: list[str]) -> int:
    """`only`: lesson numbers and/or "workbook", to run part of the test while working on it."""
    began = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    executable = chromium()
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    prepare_scratch()
    lab: Lab | None = None
    shots: list[Path] = []
    results: list[str] = []
    console: list[str] = []
    missing: list[str] = []  # URLs the page asked for that answered 404
    try:
        lab = Lab()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("response", lambda r: missing.append(r.url.split("?")[0]) if r.status == 404 else None)
            page.set_default_timeout(60_000)
            try:
                for lesson in [name for name in LESSONS if not only or name[:2] in only]:
                    say(f"running notebooks/{lesson}.ipynb")
                    results.append(run_lesson(page, lab, lesson, shots))
                    say(results[-1])
                if not only or "workbook" in only:
                    say(f"working exercises/{WORKBOOK}-workbook.ipynb")
                    results.append(work_the_workbook(page, lab, shots))
                    say(results[-1])
            finally:
                browser.close()
        widget_errors = [m for m in console if "widget" in m.lower() or "model not found" in m.lower()]
        if widget_errors:
            raise Failed(f"the browser console reported widget errors: {widget_errors[:3]}")
        if missing:
            raise Failed(f"the page got 404 for {sorted(set(missing))[:5]} (e.g. /lsp/status: the language-server "
                         "extension must be off in .jupyter/labconfig/page_config.json as well as on the server)")
        if os.name != "nt" and "without encryption" in (WORK / "jupyterlab.log").read_text():
            raise Failed("a kernel warned 'running over TCP without encryption' in make lab's terminal")
    except (Failed, PlaywrightError) as exc:
        print("\n".join(f"✅ {line}" for line in results))
        print(f"❌ make test-browser: {exc}", file=sys.stderr)
        print("Screenshots: " + ", ".join(str(p.relative_to(ROOT)) for p in shots), file=sys.stderr)
        print(f"browser: {len(results)} passed, 1 failed")
        return 1
    finally:
        if lab is not None:
            lab.stop()
        subprocess.run([sys.executable, "-m", "course", "db", "stop"], cwd=ROOT, capture_output=True,
                       env={**os.environ, "COURSE_HOME": str(HOME)}, timeout=120)
    print("\n".join(f"✅ {line}" for line in results))
    print("Screenshots:\n" + "\n".join(f"  {p.relative_to(ROOT)}" for p in shots))
    print(f"make test-browser took {time.perf_counter() - began:.0f} s")
    print(f"browser: {len(results)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
