"""`make update` in a real clone: a second commit upstream, a learner with answers in workbooks.

The worst thing the course can do is lose a learner's workbook; these tests check every byte of
every file the learner changed is still somewhere after an update: in place, or in the backup.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from course.errors import CourseError
from course.tools.update import update

GIT_ENV = {"GIT_AUTHOR_NAME": "Course", "GIT_AUTHOR_EMAIL": "course@example.org",
           "GIT_COMMITTER_NAME": "Course", "GIT_COMMITTER_EMAIL": "course@example.org",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": ""}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "HOME": str(cwd.parent)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def write(root: Path, name: str, text: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)


@pytest.fixture
def course_and_learner(tmp_path, monkeypatch):
    """An upstream course with one commit, and a learner's clone of it with work in progress."""
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(tmp_path))
    upstream = tmp_path / "course"
    upstream.mkdir()
    git(upstream, "init", "--quiet", "--initial-branch=main")
    write(upstream, ".gitignore", ".course/\n")
    write(upstream, "notebooks/00-welcome.ipynb", '{"lesson": 0, "outputs": "shipped"}\n')
    write(upstream, "exercises/00-welcome-workbook.ipynb", '{"workbook": 0, "answer": "stub"}\n')
    write(upstream, "exercises/01-basics-workbook.ipynb", '{"workbook": 1, "answer": "stub"}\n')
    write(upstream, "README.md", "v1\n")
    git(upstream, "add", "-A")
    git(upstream, "commit", "--quiet", "-m", "v1")

    learner = tmp_path / "learner"
    git(tmp_path, "clone", "--quiet", str(upstream), str(learner))
    # the learner answers both workbooks and runs lesson 00 (JupyterLab saves its outputs)
    write(learner, "exercises/00-welcome-workbook.ipynb", '{"workbook": 0, "answer": "MY ANSWER 0"}\n')
    write(learner, "exercises/01-basics-workbook.ipynb", '{"workbook": 1, "answer": "MY ANSWER 1"}\n')
    write(learner, "notebooks/00-welcome.ipynb", '{"lesson": 0, "outputs": "my run"}\n')
    write(learner, "notebooks/my-notes.ipynb", '{"notes": "mine"}\n')
    return upstream, learner


def second_commit(upstream: Path) -> None:
    """The course's next version: workbook 00 and lesson 00 change, lesson 01 is new."""
    write(upstream, "exercises/00-welcome-workbook.ipynb", '{"workbook": 0, "answer": "stub", "new": "q4"}\n')
    write(upstream, "notebooks/00-welcome.ipynb", '{"lesson": 0, "outputs": "shipped v2"}\n')
    write(upstream, "notebooks/01-basics.ipynb", '{"lesson": 1}\n')
    write(upstream, "README.md", "v2\n")
    git(upstream, "add", "-A")
    git(upstream, "commit", "--quiet", "-m", "v2")


def learner_bytes(learner: Path) -> dict[str, bytes]:
    return {str(p.relative_to(learner)): p.read_bytes()
            for p in learner.rglob("*") if p.is_file() and ".git" not in p.parts and ".course" not in p.parts}


def test_update_takes_the_new_course_and_loses_no_answer(course_and_learner) -> None:
    upstream, learner = course_and_learner
    second_commit(upstream)
    mine = {name: data for name, data in learner_bytes(learner).items()
            if name.startswith(("exercises/", "notebooks/"))}

    report = update(learner, learner / ".course" / "backups")

    assert git(learner, "rev-parse", "HEAD") == git(upstream, "rev-parse", "HEAD")
    assert (learner / "README.md").read_text() == "v2\n"
    assert (learner / "notebooks" / "01-basics.ipynb").exists()
    # untouched by the update: still in place, as the learner left it
    assert (learner / "exercises/01-basics-workbook.ipynb").read_text() == '{"workbook": 1, "answer": "MY ANSWER 1"}\n'
    assert (learner / "notebooks/my-notes.ipynb").read_text() == '{"notes": "mine"}\n'
    # changed by the update: the new version in place, the learner's in the backup
    assert '"new": "q4"' in (learner / "exercises/00-welcome-workbook.ipynb").read_text()
    assert report.backup is not None and report.backup.is_relative_to(learner / ".course" / "backups")
    assert (report.backup / "exercises/00-welcome-workbook.ipynb").read_text() == \
        '{"workbook": 0, "answer": "MY ANSWER 0"}\n'
    assert (report.backup / "notebooks/00-welcome.ipynb").read_text() == '{"lesson": 0, "outputs": "my run"}\n'
    # every byte the learner wrote is somewhere
    for name, data in mine.items():
        assert (learner / name).read_bytes() == data or (report.backup / name).read_bytes() == data, name
    assert sorted(report.replaced) == ["exercises/00-welcome-workbook.ipynb", "notebooks/00-welcome.ipynb"]
    assert "exercises/01-basics-workbook.ipynb" in report.kept
    text = "\n".join(report.lines(learner))
    assert "exercises/00-welcome-workbook.ipynb  ->  .course/backups/update-" in text
    assert "Your changes kept in place" in text and "exercises/01-basics-workbook.ipynb" in text


def test_update_with_nothing_new_changes_nothing(course_and_learner) -> None:
    _, learner = course_and_learner
    before = learner_bytes(learner)
    report = update(learner, learner / ".course" / "backups")
    assert report.before == report.after
    assert learner_bytes(learner) == before
    assert "already up to date" in "\n".join(report.lines(learner))


def test_update_merges_when_the_learner_committed_their_answers(course_and_learner) -> None:
    upstream, learner = course_and_learner
    git(learner, "add", "exercises/01-basics-workbook.ipynb")
    git(learner, "commit", "--quiet", "-m", "my answers")
    second_commit(upstream)
    update(learner, learner / ".course" / "backups")
    assert (learner / "exercises/01-basics-workbook.ipynb").read_text() == '{"workbook": 1, "answer": "MY ANSWER 1"}\n'
    assert (learner / "notebooks" / "01-basics.ipynb").exists()
    assert git(learner, "merge-base", "--is-ancestor", git(upstream, "rev-parse", "HEAD").strip(), "HEAD") == ""


def test_a_conflicting_commit_stops_the_update_and_puts_everything_back(course_and_learner) -> None:
    upstream, learner = course_and_learner
    git(learner, "add", "exercises/00-welcome-workbook.ipynb")
    git(learner, "commit", "--quiet", "-m", "my answers to 00")  # the update changes this file too
    second_commit(upstream)
    before = learner_bytes(learner)
    head = git(learner, "rev-parse", "HEAD")
    with pytest.raises(CourseError, match="could not merge"):
        update(learner, learner / ".course" / "backups")
    assert git(learner, "rev-parse", "HEAD") == head
    assert learner_bytes(learner) == before


def test_update_outside_a_clone_says_what_to_do(tmp_path) -> None:
    with pytest.raises(CourseError, match="not a git clone"):
        update(tmp_path, tmp_path / ".course" / "backups")
