"""Repository invariants: the layout, the pins, lint, and what the suite must leave untouched."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from course import registry
from course.checking.checks import exercises_of
from course.checking.solutions import workbook_from
from course.tools.doctor import pins
from course.tools.workbooks import outcomes_in

ROOT = Path(__file__).resolve().parent.parent
LESSONS = registry.LESSONS
IDS = [lesson.stem for lesson in LESSONS]


def test_lessons_are_numbered_from_00_without_gaps() -> None:
    numbers = [int(lesson.number) for lesson in LESSONS]
    assert numbers == list(range(len(numbers))), numbers


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_every_lesson_has_its_three_notebooks(lesson: registry.Lesson) -> None:
    for path in (lesson.notebook, lesson.workbook, lesson.solution):
        assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    assert importlib.util.find_spec(lesson.check_module), f"{lesson.check_module} is missing"


def test_no_notebook_or_check_module_outside_the_registry() -> None:
    """A lesson's files are named in course/registry.py: a new one is added to SLUGS there."""
    known = {p for lesson in LESSONS for p in (lesson.notebook, lesson.workbook, lesson.solution)}
    on_disk = {p for folder in ("notebooks", "exercises", "solutions") for p in (ROOT / folder).glob("*.ipynb")}
    assert on_disk <= known, f"not in course/registry.py: {sorted(str(p.relative_to(ROOT)) for p in on_disk - known)}"
    modules = {lesson.module for lesson in LESSONS}
    for folder in ("course/lessons", "tests/corpus"):
        stray = {p.stem for p in (ROOT / folder).glob("[!_]*.py")} - modules
        assert not stray, f"{folder}: modules without a lesson in course/registry.py: {sorted(stray)}"


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_check_module_offers_its_exercises_only(lesson: registry.Lesson) -> None:
    module = lesson.checks()
    exercises = exercises_of(module)
    assert all(ex.lesson == lesson.number for ex in exercises)
    assert sorted(module.__all__) == sorted(ex.name for ex in exercises), \
        f"{lesson.check_module}: __all__ lists the exercises, nothing else"
    offered = [name for name in dir(module) if not name.startswith("_")]  # what `ex.` completes
    assert offered == sorted(ex.name for ex in exercises), \
        f"{lesson.check_module}: `ex.` offers {offered}, not the exercises only"


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_exercises_equal_a_fresh_build(lesson: registry.Lesson) -> None:
    built = workbook_from(lesson.solution)
    committed = nbformat.read(lesson.workbook, as_version=4)
    def shape(nb):
        return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]

    assert shape(committed) == shape(built), \
        f"exercises/{lesson.workbook.name} is out of date: run `make build`"


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_stored_check_lines_prove_solution_and_stub(lesson: registry.Lesson) -> None:
    expected = [ex.name for ex in exercises_of(lesson.checks())]
    assert len(expected) >= 3, f"{lesson.stem}: a workbook has 3 to 6 exercises"
    solved = outcomes_in(nbformat.read(lesson.solution, as_version=4))
    assert sorted(o.exercise for o in solved) == sorted(expected), "solutions/: one check line per exercise"
    assert all(o.status == "correct" for o in solved), [o.message for o in solved if o.status != "correct"]
    stubs = outcomes_in(nbformat.read(lesson.workbook, as_version=4))
    assert sorted(o.exercise for o in stubs) == sorted(expected), "exercises/: one check line per exercise"
    assert all(o.status == "not attempted" for o in stubs), [o.message for o in stubs if o.status != "not attempted"]


@pytest.mark.parametrize("lesson", LESSONS, ids=IDS)
def test_lesson_opens_and_closes_the_same_way(lesson: registry.Lesson) -> None:
    nb = nbformat.read(lesson.notebook, as_version=4)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    first, text = markdown[0], "\n".join(markdown)
    assert first.startswith(f"# {lesson.number} "), "the first cell is the title '# NN · ...'"
    for needle in ("What you will learn", "Time", "Prerequisites"):
        assert needle.lower() in first.lower(), f"the opening cell lacks '{needle}'"
    for needle in ("## Summary", "Pitfalls", "Next"):
        assert needle.lower() in text.lower(), f"the lesson lacks '{needle}'"


@pytest.mark.parametrize("folder", ["notebooks", "exercises", "solutions"])
def test_notebooks_use_top_level_await_not_asyncio_run(folder: str) -> None:
    for path in sorted((ROOT / folder).glob("*.ipynb")):
        if path.name.startswith("01-"):
            continue  # lesson 01 contrasts scripts (asyncio.run) with Jupyter
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                assert "asyncio.run(" not in cell.source, f"{folder}/{path.name} uses asyncio.run()"


def test_environment_yml_agrees_with_pyproject() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = {}
    for spec in pip_section:
        if "==" in spec:
            name, version = spec.split("==")
            conda_pins[re.sub(r"\[.*\]", "", name).lower()] = version
    assert conda_pins == pins(optional=True)


def test_pins_are_exact_and_constraints_agree() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [spec for group in project.get("optional-dependencies", {}).values() for spec in group]
    assert all("==" in spec for spec in project["dependencies"] + extras)
    constraints = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            constraints[name.lower().replace("_", "-")] = version
    for name, version in pins(optional=True).items():
        assert constraints.get(name.replace("_", "-")) == version, f"constraints.txt disagrees on {name}"
    for extra, specs in project.get("optional-dependencies", {}).items():
        for spec in specs:
            name, version = spec.split("==")
            assert constraints.get(name.lower()) == version, f"constraints.txt disagrees on {name} ([{extra}])"


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make lab" in readme and "make test" in readme
    assert re.search(r"^make test$", ci, re.M), ".ci/run must call `make test`"


def test_ruff_passes_on_code_and_notebooks() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or "ruff"
    result = subprocess.run([ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_datasets_are_verified_by_checksum() -> None:
    from course.db.chinook import verify_files

    assert re.fullmatch(r"[0-9a-f]{10}", verify_files())
    assert (ROOT / "datasets" / "chinook" / "LICENSE.md").exists()
    assert (ROOT / "datasets" / "chinook" / "README.md").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_the_whole_course(tmp_path) -> None:
    """`make lab`'s own command (from tasks.py), started on loopback: every folder is reachable,
    00 opens, and the course's settings apply (no news pop-up, no build metadata in the file browser)."""
    import json
    import secrets
    import time
    import urllib.request

    import tasks

    command = tasks.lab_command(Path(sys.executable))
    token, port = secrets.token_hex(16), _free_port()
    args = command + ["--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                      "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    env = {**tasks.lab_env(), "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    server = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def get(path: str, api: str = "api/contents") -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{api}/{path}?token={token}", timeout=5) as r:
            return json.load(r)

    try:
        for _ in range(120):
            try:
                listing = get("")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(0.25)
        else:
            raise AssertionError("JupyterLab did not answer within 30 s")
        names = {item["name"] for item in listing["content"]}
        assert {"notebooks", "exercises", "solutions", "datasets"} <= names, names
        assert get("notebooks/00-welcome.ipynb")["type"] == "notebook"
        assert not any(name.endswith(".egg-info") for name in names), names
        news = get("@jupyterlab/apputils-extension:notification", "lab/api/settings")["schema"]["properties"]
        assert news["fetchNews"]["default"] == "false" and news["checkForUpdates"]["default"] is False
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("folder", ["notebooks", "exercises", "solutions"])
def test_notebooks_store_no_run_timestamps(folder: str) -> None:
    """Timestamps would change every stored notebook on every run and bury the real changes."""
    for path in sorted((ROOT / folder).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            assert "execution" not in cell.metadata, f"{folder}/{path.name}: run it with `python -m course run`"


@pytest.mark.parametrize("folder", ["notebooks", "exercises", "solutions"])
def test_nbval_markers_are_cell_tags_not_comments(folder: str) -> None:
    """A learner sees a `# NBVAL_...` comment heading a cell; a tag is for the tests only."""
    for path in sorted((ROOT / folder).glob("*.ipynb")):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code":
                assert not re.search(r"#\s*NBVAL_", cell.source), \
                    f"{folder}/{path.name} cell {index}: use the tag nbval-ignore-output (or raises-exception)"


def _course_imports(path: Path) -> set[str]:
    """The course modules that `path` imports anywhere in it, even inside a function."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import, from the package the module is in
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *filter(None, [base])])
            names = [f"{base}.{alias.name}" for alias in node.names]  # a module, or a name of base
        else:
            continue
        found.update(n for n in names if n == "course" or n.startswith("course."))
    return found


def course_import_graph() -> dict[str, set[str]]:
    """{module: the course modules it imports}, for every module under course/.

    `from course import x` counts as importing course.x when x is a module, else `course` (the
    package's `__init__.py`, a node like the others)."""
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in sorted((ROOT / "course").rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {t if t in modules else t.rpartition(".")[0] for t in _course_imports(path)}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (a depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_course_modules_import_each_other_without_a_cycle() -> None:
    """Every import counts, also one inside a function: a cycle means two modules that cannot
    be understood (or changed) one without the other."""
    cycle = _a_cycle(course_import_graph())
    assert cycle is None, "import cycle in course/: " + " -> ".join(cycle or [])


# The layers of course/, from the bottom: each module imports only its own layer or lower ones.
# The package's face (course/__init__.py, __main__.py) stands above them all.
LAYERS = ("base", "db", "checking", "apps", "lessons", "tools", "face")


def layer_of(module: str) -> str:
    """course.db.postgres -> db; a module directly in course/ (paths, errors, probes, models,
    ...) -> base; the package itself -> face."""
    if module in ("course", "course.__main__"):
        return "face"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "base"


def test_each_layer_imports_only_downwards() -> None:
    """The folders show the layers: the databases know nothing of checks, the checks nothing of
    the lessons, and nothing below the tools imports a tool."""
    upward = [f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
              for module, targets in sorted(course_import_graph().items()) for target in sorted(targets)
              if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module))]
    assert not upward, "an import runs up a layer:\n" + "\n".join(upward)
    assert {layer_of(m) for m in course_import_graph()} == set(LAYERS), "a folder that is no layer"


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _a_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _a_cycle({"a": {"b"}, "b": set()}) is None


def test_mypy_passes_on_the_course_package() -> None:
    """[tool.mypy] in pyproject.toml: strict for the databases layer and the checking engine.
    Its cache lives in .course/mypy-cache, so a second run takes a second or two."""
    assert importlib.util.find_spec("mypy"), "mypy comes with the test extra: `python tasks.py install --extra test`"
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
