"""`python -m course ...`: the commands behind make progress, verify, reset, update, build, room and db-*."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from course import registry
from course.errors import CourseError
from course.paths import ROOT


def _lessons(arg: str | None) -> list[str]:
    if arg:
        return [arg.zfill(2)]
    return [lesson.number for lesson in registry.LESSONS]


def cmd_progress(args: argparse.Namespace) -> int:
    from course.tools.workbooks import progress_table

    print(progress_table())
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from course.checking.checks import Outcome
    from course.tools.workbooks import verify

    lessons = _lessons(args.lesson)
    print("Running your saved workbooks (save them first: unsaved edits are not seen).")
    results: dict[str, list[Outcome] | CourseError] = {}
    for lesson in tqdm(lessons, desc="running workbooks", unit="notebook", disable=len(lessons) < 2):
        try:
            results[lesson] = verify(lesson)
        except CourseError as exc:  # one broken workbook does not stop the others
            results[lesson] = exc
    for lesson, outcomes in results.items():
        print(f"\nLesson {lesson}")
        if isinstance(outcomes, CourseError):
            print(f"  ⚠️ {outcomes.problem} Fix: {outcomes.fix}")
            continue
        for outcome in outcomes:
            print(f"  {outcome.line}")
    print()
    from course.tools.workbooks import progress_table

    print(progress_table())
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from course.tools.workbooks import reset

    if not args.lesson:
        raise CourseError("make reset needs a lesson number.", "run `make reset NB=04`, for example.")
    target, backup = reset(args.lesson.zfill(2))
    print(f"Restored {target.relative_to(ROOT)}, and cleared its progress. Your previous version is "
          f"saved as {backup.relative_to(ROOT) if backup.is_relative_to(ROOT) else backup}.")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from course.paths import state_dir
    from course.tools.update import update

    print("Taking the new version of the course; every file you changed is saved first.")
    report = update(ROOT, state_dir() / "backups")
    print("\n".join(report.lines(ROOT)))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from course.tools.build import build_all, execute

    written = build_all(args.lesson.zfill(2) if args.lesson else None)
    for path in tqdm(written, desc="executing new workbooks", unit="notebook", disable=not written):
        execute(path)
    print(f"{len(written)} workbook(s) rebuilt" + "".join(f"\n  {p.relative_to(ROOT)}" for p in written))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from course.tools.build import execute

    for name in tqdm(args.paths, desc="executing", unit="notebook"):
        execute(Path(name).resolve())
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    import asyncio
    import shutil

    from course.db import postgres

    if args.action == "start":
        db = asyncio.run(postgres.fresh_postgres("smoke_test"))
        print(f"PostgreSQL is ready: {db!r}")
    elif args.action == "stop":
        print("stopped the course's PostgreSQL" if postgres.stop_local() else "it was not running")
    elif args.action == "status":
        running = postgres.is_local_running()
        print("the course's PostgreSQL is running" if running else "the course's PostgreSQL is stopped")
        return 1 if running and args.expect_stopped else 0
    elif args.action == "cleanup-shared":  # the instructor, after a workshop on DATABASE_URL
        names = asyncio.run(postgres.cleanup_shared(drop=not args.dry_run))
        verb = "would drop" if args.dry_run else "dropped"
        print(f"{verb} {len(names)} course database(s) on the server in DATABASE_URL"
              + "".join(f"\n  {name}" for name in names))
        print(asyncio.run(postgres.cleanup_room_table(drop=not args.dry_run)))
    elif args.action == "reset":
        postgres.stop_local()
        shutil.rmtree(postgres.pgdata(), ignore_errors=True)
        print("removed .course/pgdata; the next notebook that needs PostgreSQL rebuilds it.")
    return 0


def cmd_room(args: argparse.Namespace) -> int:
    """The instructor's live view of the room (INSTRUCTORS.md, "The room view")."""
    import asyncio

    from course.checking import room

    url = (os.environ.get("ROOM_DATABASE_URL") or os.environ.get("DATABASE_URL") or "").strip()
    if not url:
        raise CourseError("The room view needs the workshop's server: neither ROOM_DATABASE_URL nor "
                          "DATABASE_URL is set.",
                          "set ROOM_DATABASE_URL to a role that may read course_room_verdict "
                          "(INSTRUCTORS.md, \"The room view\").")
    if args.setup:
        try:
            asyncio.run(room.setup(url, learners=args.learners, viewer=args.viewer))
        except Exception as exc:
            raise _room_server_error(exc, "check DATABASE_URL; --setup needs the server's superuser "
                                     "(or the owner of its database), and roles that exist") from None
        print(f"{room.TABLE} is ready" + (f"; {args.learners} may add to it" if args.learners else "")
              + (f"; {args.viewer} may read it" if args.viewer else "") + ".")
        return 0
    name = args.room or room.room_name()
    if not name:
        raise CourseError("Which room? COURSE_ROOM is not set.",
                          "run `make room ROOM=tuesday` (or `python -m course room --room tuesday`).")
    from course.tools.room_view import create_app, serve

    print(f"Room {name!r}: http://{args.host}:{args.port}/ (Ctrl+C stops it)", flush=True)
    try:
        asyncio.run(serve(create_app(url, name), args.host, args.port))
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        raise _room_server_error(exc, "check ROOM_DATABASE_URL (or DATABASE_URL), and that the port "
                                 "is free (PORT=...)") from None
    return 0


def _room_server_error(exc: Exception, fix: str) -> CourseError:
    """One line for a failure of `course room`, never the URL (it may hold a password)."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "://" in detail:
        detail = ""
    return CourseError(f"The room view could not use its server: {type(exc).__name__}"
                       + (f": {detail}" if detail else "") + ".", fix)


def cmd_doctor(args: argparse.Namespace) -> int:
    import asyncio

    from course.tools.doctor import report

    asyncio.run(report())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("progress", help="table of every exercise and its state").set_defaults(func=cmd_progress)
    sub.add_parser("doctor", help="check the set-up").set_defaults(func=cmd_doctor)
    for name, func, text in [("verify", cmd_verify, "re-run your workbooks in fresh kernels"),
                             ("reset", cmd_reset, "restore a workbook (your copy is backed up)"),
                             ("build", cmd_build, "write exercises/ from solutions/")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("lesson", nargs="?", default=None)
        p.set_defaults(func=func)
    sub.add_parser("update", help="take the new course; your changed notebooks are saved first"
                   ).set_defaults(func=cmd_update)
    p = sub.add_parser("run", help="execute notebooks in place (for authors)")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("db", help="the embedded PostgreSQL; cleanup-shared: the server in DATABASE_URL")
    p.add_argument("action", choices=["start", "stop", "status", "reset", "cleanup-shared"])
    p.add_argument("--expect-stopped", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="cleanup-shared: list, drop nothing")
    p.set_defaults(func=cmd_db)
    p = sub.add_parser("room", help="instructors: the live view of the room's checks")
    p.add_argument("--room", default="", help="the room's name (default: COURSE_ROOM)")
    p.add_argument("--host", default="127.0.0.1", help="listen here (default: loopback only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--setup", action="store_true", help="create the table (as its owner) and grant")
    p.add_argument("--learners", default="", help="--setup: the learners' role, given INSERT")
    p.add_argument("--viewer", default="", help="--setup: the view's role, given SELECT")
    p.set_defaults(func=cmd_room)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CourseError as exc:
        print(f"⚠️ {exc.problem}\nFix: {exc.fix}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `make progress | head` closed the pipe early: not an error
        sys.stdout = open(os.devnull, "w")  # Python flushes stdout at exit
        return 0
