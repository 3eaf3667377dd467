"""`make update`: take the new version of the course without losing a learner's work.

Running a lesson rewrites its notebook (JupyterLab saves outputs), and a workbook holds the
learner's answers, so a plain `git pull` conflicts or refuses. Here:

1. every notebook the learner changed (and every other changed file) is copied into
   .course/backups/update-<time>/ first, byte for byte, and the copy is checked;
2. a changed file that the update does not touch stays in place, as the learner left it;
3. a changed file that the update does change is set back to the shipped version, so that the
   new one can come in; the learner's version is in the backup folder, and the report says so;
4. the new course is merged (fast-forward when the learner made no commits of their own);
5. if the merge cannot be done, everything is put back as it was and the report says why.

Nothing is restored or overwritten without a line in the report.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from course.errors import CourseError


@dataclass
class Report:
    backup: Path | None = None
    kept: list[str] = field(default_factory=list)          # changed by the learner, left in place
    replaced: list[str] = field(default_factory=list)      # the update's version now; the learner's in backup
    moved: list[str] = field(default_factory=list)         # learner's untracked files the update adds too
    updated: list[str] = field(default_factory=list)       # files the update changed
    before: str = ""
    after: str = ""

    def lines(self, root: Path) -> list[str]:
        where = self.backup.relative_to(root) if self.backup and self.backup.is_relative_to(root) else self.backup
        if self.before == self.after:
            out = ["The course is already up to date."]
        else:
            out = [f"Updated the course: {len(self.updated)} file(s) changed ({self.before[:7]} -> {self.after[:7]})."]
        if self.kept:
            out.append("Your changes kept in place (the update does not touch these files):")
            out += [f"  {name}" for name in self.kept]
        if self.replaced:
            out.append("Changed by the update: these are the new version now, and your version is saved:")
            out += [f"  {name}  ->  {where}/{name}" for name in self.replaced]
            out.append("Open your saved copy next to the new one and carry your answers across.")
        if self.moved:
            out.append("Files of yours that the update also adds, moved to the backup:")
            out += [f"  {name}  ->  {where}/{name}" for name in self.moved]
        if where is not None:
            out.append(f"A copy of everything you had changed is in {where}/.")
        return out


def _git(root: Path, *args: str, check: bool = True) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        raise CourseError("make update needs git, which is not installed.",
                          "install git, or download the new course and copy your exercises/ into it.") from None
    except subprocess.TimeoutExpired:
        raise CourseError(f"`git {args[0]}` did not finish within 5 minutes.",
                          "check your network connection and try again; nothing was changed.") from None
    if check and done.returncode != 0:
        raise _GitFailed(args, (done.stderr or done.stdout).strip())
    return done.stdout


class _GitFailed(Exception):
    def __init__(self, args: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.args_ = args
        self.message = message


def _changed(root: Path) -> tuple[list[str], list[str]]:
    """(tracked files with local changes, untracked files), as paths relative to root."""
    tracked, untracked = [], []
    out = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    entries = out.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if not entry:
            continue
        code, name = entry[:2], entry[3:]
        if code[0] in "RC":  # a rename or copy: the next entry is its old name
            i += 1
        if code == "??":
            untracked.append(name)
        else:
            tracked.append(name)
    return sorted(tracked), sorted(untracked)


def _backup(root: Path, names: list[str], folder: Path) -> None:
    for name in names:
        source = root / name
        if not source.is_file():  # deleted by the learner: nothing to keep
            continue
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        if target.read_bytes() != source.read_bytes():
            raise CourseError(f"The backup of {name} could not be written; nothing was updated.",
                              f"check free disk space in {folder}.")


def update(root: Path, backups: Path) -> Report:
    """Fetch and merge the course's upstream branch into the checkout at `root`."""
    try:
        return _update(root, backups)
    except _GitFailed as exc:
        raise CourseError(f"`git {' '.join(exc.args_)}` failed: {exc.message.splitlines()[-1] if exc.message else ''}",
                          "nothing was changed; fix that, or ask for help with the message above.") from None


def _update(root: Path, backups: Path) -> Report:
    top = _git(root, "rev-parse", "--show-toplevel", check=False).strip()
    if not top or Path(top).resolve() != root.resolve():
        raise CourseError("This copy of the course is not a git clone, so it cannot update itself.",
                          "download the new course, then copy your exercises/ folder into it.")
    if (root / ".git" / "MERGE_HEAD").exists() or _git(root, "ls-files", "--unmerged").strip():
        raise CourseError("A git merge is already under way in this folder.",
                          "finish it (or `git merge --abort`), then run make update again.")
    upstream = _git(root, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}", check=False).strip()
    if not upstream or upstream.startswith("fatal"):
        raise CourseError("This branch does not follow a branch of the course, so there is nothing to update from.",
                          "run `git branch --set-upstream-to=origin/main` (or the course's branch), then make update.")
    remote = upstream.split("/", 1)[0]
    _git(root, "fetch", "--quiet", remote)

    report = Report(before=_git(root, "rev-parse", "HEAD").strip(), after=_git(root, "rev-parse", upstream).strip())
    base = _git(root, "merge-base", "HEAD", upstream).strip()
    incoming = set(_git(root, "diff", "--name-only", "-z", "--no-renames", base, upstream).split("\0")) - {""}
    report.updated = sorted(incoming)
    tracked, untracked = _changed(root)
    mine = [n for n in tracked + untracked if not n.startswith(".course/")]

    if mine:
        report.backup = backups / f"update-{time.strftime('%Y%m%d-%H%M%S')}"
        n = 1
        while report.backup.exists():
            report.backup, n = backups / f"update-{time.strftime('%Y%m%d-%H%M%S')}-{n}", n + 1
        _backup(root, mine, report.backup)

    if _is_ancestor(root, upstream, "HEAD"):  # nothing new upstream
        report.after = report.before
        report.kept = [n for n in tracked + untracked if n in mine]
        return report

    clash = [n for n in tracked if n in incoming]
    blocked = [n for n in untracked if n in incoming]
    report.kept = [n for n in tracked + untracked if n in mine and n not in incoming]
    for name in clash:  # backed up above; the shipped version goes back so the new one can come in
        if _exists_in(root, "HEAD", name):
            _git(root, "checkout", "HEAD", "--", name)
        else:  # added by the learner with `git add`: the update adds a file of that name too
            _git(root, "rm", "--cached", "--quiet", "--", name)
            (root / name).unlink(missing_ok=True)
    for name in blocked:
        (root / name).unlink(missing_ok=True)

    if _is_ancestor(root, "HEAD", upstream):
        merged = _git(root, "merge", "--ff-only", "--quiet", upstream, check=False)
        ok = _is_ancestor(root, upstream, "HEAD")
    else:  # the learner made commits of their own: a real merge
        merged = _git(root, "merge", "--no-edit", "--quiet", upstream, check=False)
        ok = _is_ancestor(root, upstream, "HEAD")
        if not ok:
            _git(root, "merge", "--abort", check=False)
    if not ok:
        _put_back(root, report.backup, clash + blocked)
        raise CourseError(f"git could not merge the new course into yours ({merged.strip() or 'conflicting commits'}). "
                          "Your files are as they were.",
                          "ask for help, or clone the course again and copy your exercises/ across "
                          f"(a copy of your changed files is in {report.backup}).")
    report.after = _git(root, "rev-parse", "HEAD").strip()
    report.replaced = clash
    report.moved = blocked
    return report


def _exists_in(root: Path, commit: str, name: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{commit}:{name}"], cwd=root,
                          capture_output=True).returncode == 0


def _is_ancestor(root: Path, older: str, newer: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", older, newer], cwd=root,
                          capture_output=True).returncode == 0


def _put_back(root: Path, backup: Path | None, names: list[str]) -> None:
    """After a failed merge: the learner's own versions back in place, from the backup."""
    if backup is None:
        return
    for name in names:
        saved = backup / name
        if saved.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(saved, root / name)
