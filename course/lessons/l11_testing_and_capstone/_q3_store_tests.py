"""q3: the learner's tests, scored by mutation (run by pytest in a subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from course.apps.capstone_tools import CONFTEST, VARIANTS, variant_routes
from course.checking.checks import Exercise, Wrong, call
from course.db.engines import fresh_engine_url

REPORTER = '''\
import json
import os

results = {}
stores = {}


def pytest_collection_modifyitems(items):
    """Note which store (the create_app parameter) each test instance ran against, if any."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        stores[item.nodeid] = params.get("create_app")


def pytest_runtest_logreport(report):
    entry = results.setdefault(report.nodeid, {"outcome": "passed", "message": "",
                                               "store": stores.get(report.nodeid)})
    if report.failed and entry["outcome"] == "passed":
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)
        entry.update(outcome="failed" if report.when == "call" else "error",
                     message=message.strip().splitlines()[0] if message.strip() else "")
    if report.skipped:
        entry["outcome"] = "skipped"


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["STORE_REPORT"], "w") as out:
        json.dump({"exitstatus": int(exitstatus), "tests": results}, out)
'''


OVERDRAWN = ("took the stock before checking it, or without a check that stops it. Let the "
             "write check, in the order's transaction: `update(stock).where(stock.c.track_id == "
             "t, stock.c.quantity >= q).values(quantity=stock.c.quantity - q)`, and when its "
             "`rowcount` is not 1, roll back and answer 409.")


def _stock_overdrawn(exc: BaseException) -> bool:
    """Whether the learner's error is the stock_not_negative CHECK refusing a write."""
    from sqlalchemy.exc import IntegrityError

    cause = exc.__cause__
    return isinstance(cause, IntegrityError) and "stock_not_negative" in str(cause)


async def _run_pytest(folder: Path, stores: list[str], template: Path) -> dict:
    """Run pytest on the folder's test_store.py, once per store, in one subprocess."""
    report = folder / "report.json"
    env = {**os.environ, "STORE_VARIANTS": ",".join(stores), "STORE_TEMPLATE": str(template),
           "STORE_REPORT": str(report), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # only anyio's plugin: nbval's is slow to load
           "PYTHONPATH": os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH"))
                                         if p)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "anyio.pytest_plugin",
        "-p", "store_report",
        "-c", os.devnull, "--rootdir", str(folder), "test_store.py", cwd=folder, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await process.communicate()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if not report.exists():
        lines = [ln for ln in output.decode(errors="replace").splitlines() if ln.strip()]
        error = next((ln for ln in lines if "Error" in ln), lines[-1] if lines else "no output")
        raise Wrong(f"pytest could not run your tests: {error[:200]}")
    return json.loads(report.read_text())


def _test_key(nodeid: str, store: str | None) -> str:
    """A test instance's name without its store: `TestX::test_y[1-reference]` -> `TestX::test_y[1]`.

    Each instance of a parametrized test (and each method of a class) keeps its own key."""
    name = nodeid.split("::", 1)[-1]
    base, bracket, rest = name.partition("[")
    if not bracket or store is None:
        return name
    params = rest[:-1].split("-") if rest.endswith("]") else rest.split("-")
    if store in params:
        params.remove(store)
    return f"{base}[{'-'.join(params)}]" if params else base


def _by_store(tests: dict, stores: list[str]) -> dict[str, dict[str, dict]]:
    """{store: {test instance: result}}; a test that does not use `client` counts for every store."""
    out: dict[str, dict[str, dict]] = {store: {} for store in stores}
    for nodeid, result in tests.items():
        store = result.get("store")
        key = _test_key(nodeid, store)
        for each in [store] if store in out else stores:
            out[each][key] = result
    return out


async def _check_store_tests(store_tests) -> str:
    source = await call(store_tests)
    if not isinstance(source, str):
        raise Wrong(f"store_tests() returned {type(source).__name__}; return the text of your "
                    "test module, a str.")
    try:
        compile(source, "test_store.py", "exec")
    except SyntaxError as exc:
        raise Wrong(f"your test module does not compile: line {exc.lineno}: {exc.msg}.") from None
    import ast

    async_tests = [node.name for node in ast.walk(ast.parse(source))
                   if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test")]
    if async_tests and "anyio" not in source:
        raise Wrong(f"{async_tests[0]} is an async test without `@pytest.mark.anyio`, so pytest "
                    "cannot run it: add the mark (or `pytestmark = pytest.mark.anyio` at the top "
                    "of the module).")
    if "def test" not in source:
        raise Wrong("your module has no test: pytest collects functions whose names start "
                    "with `test`.")
    template = Path((await fresh_engine_url("check-11-q3")).database)  # set-up, before any test
    folder = Path(tempfile.mkdtemp(prefix="course-l11-q3-"))
    try:
        (folder / "conftest.py").write_text(CONFTEST)
        (folder / "store_report.py").write_text(REPORTER)
        (folder / "test_store.py").write_text(source)
        stores = ["reference", *VARIANTS]
        results = _by_store((await _run_pytest(folder, stores, template))["tests"], stores)
        tests = results["reference"]
        if not tests:
            raise Wrong("pytest collected no test from your module: name them `test_...`, and "
                        "mark async ones `@pytest.mark.anyio`.")
        for name, result in sorted(tests.items()):
            if result["outcome"] == "skipped":
                raise Wrong(f"{name} was skipped against the correct app: an async test without "
                            "`@pytest.mark.anyio` is not run (add the mark, or "
                            "`pytestmark = pytest.mark.anyio` at the top of the module).")
            if "not natively supported" in result["message"]:
                raise Wrong(f"{name} is an async test without `@pytest.mark.anyio`, so pytest "
                            "cannot run it: add the mark (or `pytestmark = pytest.mark.anyio` "
                            "at the top of the module).")
            if result["outcome"] != "passed":
                raise Wrong(f"{name} fails against the correct app (the lesson-09 store), so it "
                            f"cannot tell a bug from no bug: {result['message'][:160]}")
        routes = variant_routes()
        missed = []
        for variant in VARIANTS:
            if not any(r["outcome"] in ("failed", "error") for r in results[variant].values()):
                missed.append(routes[variant][3])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    caught = len(VARIANTS) - len(missed)
    if missed:
        raise Wrong(f"your tests caught {caught} of {len(VARIANTS)} planted bugs: they miss "
                    + "; ".join(missed) + ".")
    return (f"your {len(tests)} tests pass against the lesson-09 store and caught {caught} of "
            f"{len(VARIANTS)} planted bugs (a missing rollback, an off-by-one page, a 200 for a "
            "404, N+1 queries, a blocking call).")


q3 = Exercise(
    "q3", "store_tests", _check_store_tests,
    hints=["Start from one test per route, each with a precise expectation: the status code "
           "and the JSON. A test that only checks `status_code == 200` catches few bugs.",
           "Think like the bugs: a repeated artist name (409, then the store still works); two "
           "consecutive pages (the second starts where the first ended); a missing artist "
           "(404); the number of statements of a page (`statements`); `blocking_calls` after a "
           "request.",
           "For N+1: `statements.clear()`, one page of 50 tracks, then `assert len(statements) "
           "<= 3`. For blocking: request an album, then `assert blocking_calls == []`."],
    limit=240.0,
    title="Tests that catch bugs: scored by mutation",
)
