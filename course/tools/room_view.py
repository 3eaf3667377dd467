"""The instructor's live view of the room: `make room` (or `python -m course room`).

A FastAPI app over an asyncpg pool, built as lesson 09 builds its store: the lifespan owns the
pool (and one connection that LISTENs for new verdicts), a dependency lends each request a
connection, Pydantic schemas say what goes out, and every parameter is bound. It only reads
`course_room_verdict`, so a role with SELECT on that table and nothing else is enough.

    app = create_app(url, room="tuesday")
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://room") as client:
            (await client.get("/api/room")).json()

Routes: GET / (the page), GET /api/room (the room as JSON), GET /events (server-sent events:
one `verdict` event each time a check in this room is recorded; the page then re-reads
/api/room). `serve()` runs the app on a socket with asyncio and h11 alone, no extra package.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

from course.checking.room import CHANNEL, TABLE

# The half-day agenda INSTRUCTORS.md suggests, in minutes per lesson (a break after 02).
AGENDA: list[tuple[str, int]] = [("00", 15), ("01", 40), ("02", 45), ("break", 15), ("03", 40),
                                 ("04", 45)]

CELLS = f"""
SELECT learner, exercise,
       (array_agg(status ORDER BY id DESC) FILTER (WHERE status <> 'busy'))[1] AS status,
       (array_agg(message ORDER BY id DESC) FILTER (WHERE status <> 'busy'))[1] AS message,
       min(at) AS first_at, max(at) AS last_at,
       min(at) FILTER (WHERE status = 'correct') AS solved_at,
       count(*) FILTER (WHERE status = 'wrong') AS tries
FROM {TABLE} WHERE room = $1 GROUP BY learner, exercise ORDER BY learner, exercise"""  # noqa: S608 -- constant table name

WRONG_LINES = f"""
SELECT exercise, message, n FROM (
    SELECT exercise, message, count(*) AS n,
           row_number() OVER (PARTITION BY exercise ORDER BY count(*) DESC, message) AS rank
    FROM {TABLE} WHERE room = $1 AND status = 'wrong' GROUP BY exercise, message) AS counted
WHERE rank <= $2 ORDER BY exercise, n DESC, message"""  # noqa: S608 -- constant table name


# --- schemas ------------------------------------------------------------------------------------

class Cell(BaseModel):
    learner: str
    exercise: str
    status: str          # the latest verdict: correct, wrong, not attempted, error (busy if only that)
    message: str
    seconds: int         # correct: first check to first ✅; otherwise: since the first check
    tries: int           # ❌ verdicts so far


class WrongLine(BaseModel):
    exercise: str
    message: str
    count: int


class Stuck(BaseModel):
    learner: str
    exercise: str
    status: str
    seconds: int         # since their first check of it
    tries: int


class LessonPace(BaseModel):
    lesson: str
    exercises: int       # in the course
    started: int         # learners with a verdict in it
    finished: int        # learners with every exercise of it ✅


class Pace(BaseModel):
    minutes: int                 # since the room's first verdict
    agenda_lesson: str           # where the half-day agenda would be by now
    median_lesson: str           # the median learner's furthest lesson
    median_done: float           # exercises ✅ by the median learner
    lessons: list[LessonPace]


class RoomOut(BaseModel):
    room: str
    now: datetime
    learners: list[str]
    exercises: list[str]         # those with a verdict, in course order
    cells: list[Cell]
    wrong_lines: list[WrongLine]
    stuck: list[Stuck]
    pace: Pace


# --- reading the room ---------------------------------------------------------------------------

def course_exercises() -> list[str]:
    """Every exercise of the course ("00.q1", ...), in lesson order."""
    from course.tools.workbooks import all_exercises

    return [exercise.key for exercise in all_exercises()]


def agenda_lesson(minutes: float) -> str:
    """The lesson the half-day agenda reaches after `minutes`."""
    for lesson, length in AGENDA:
        if minutes < length:
            return lesson
        minutes -= length
    return "past the half day"


def summarize(room: str, now: datetime, rows: list[Any], wrong: list[Any], order: list[str],
              stuck_limit: int = 10) -> RoomOut:
    """The room from the rows of CELLS and WRONG_LINES."""
    rank = {key: i for i, key in enumerate(order)}
    cells = []
    for r in rows:
        until = r["solved_at"] if r["status"] == "correct" and r["solved_at"] else now
        cells.append(Cell(learner=r["learner"], exercise=r["exercise"], status=r["status"] or "busy",
                          message=r["message"] or "", tries=r["tries"],
                          seconds=max(0, int((until - r["first_at"]).total_seconds()))))
    learners = sorted({c.learner for c in cells})
    exercises = sorted({c.exercise for c in cells}, key=lambda k: (rank.get(k, len(rank)), k))
    latest: dict[str, Any] = {}
    for r in rows:  # each learner's most recent exercise
        if r["learner"] not in latest or r["last_at"] > latest[r["learner"]]["last_at"]:
            latest[r["learner"]] = r
    by_key = {(c.learner, c.exercise): c for c in cells}
    stuck = [by_key[(name, r["exercise"])] for name, r in latest.items()]
    stuck = sorted((c for c in stuck if c.status != "correct"), key=lambda c: (-c.seconds, c.learner))
    return RoomOut(room=room, now=now, learners=learners, exercises=exercises, cells=cells,
                   wrong_lines=[WrongLine(exercise=w["exercise"], message=w["message"], count=w["n"])
                                for w in wrong],
                   stuck=[Stuck(learner=c.learner, exercise=c.exercise, status=c.status,
                                seconds=c.seconds, tries=c.tries) for c in stuck[:stuck_limit]],
                   pace=_pace(cells, rows, now, order))


def _pace(cells: list[Cell], rows: list[Any], now: datetime, order: list[str]) -> Pace:
    lessons = sorted({key.split(".")[0] for key in order})
    per_lesson = {lesson: [k for k in order if k.startswith(f"{lesson}.")] for lesson in lessons}
    solved = {(c.learner, c.exercise) for c in cells if c.status == "correct"}
    learners = sorted({c.learner for c in cells})
    furthest = [max(c.exercise.split(".")[0] for c in cells if c.learner == name) for name in learners]
    done = [sum(1 for s in solved if s[0] == name) for name in learners]
    start = min((r["first_at"] for r in rows), default=now)
    minutes = max(0, int((now - start).total_seconds() // 60))
    return Pace(
        minutes=minutes, agenda_lesson=agenda_lesson(minutes),
        median_lesson=sorted(furthest)[(len(furthest) - 1) // 2] if furthest else "",
        median_done=statistics.median(done) if done else 0,
        lessons=[LessonPace(lesson=lesson, exercises=len(keys),
                            started=sum(1 for n in learners
                                        if any(c.learner == n and c.exercise in keys for c in cells)),
                            finished=sum(1 for n in learners if all((n, k) in solved for k in keys)))
                 for lesson, keys in per_lesson.items()])


# --- the connection dependency ------------------------------------------------------------------

async def get_conn(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """One pooled connection per request, from the pool the lifespan put in the request's state."""
    async with request.state.pool.acquire() as conn:
        yield conn


ConnDep = Annotated[asyncpg.Connection, Depends(get_conn)]


# --- the app ------------------------------------------------------------------------------------

def create_app(url: str, room: str, wrong_lines: int = 3) -> FastAPI:
    """The view of `room` over the server at `url` (a role that may SELECT the table is enough)."""
    order = course_exercises()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        subscribers: set[asyncio.Queue[str]] = set()

        def notified(conn: Any, pid: int, channel: str, payload: str) -> None:
            if payload == room:
                for q in subscribers:
                    q.put_nowait(payload)

        pool = await asyncpg.create_pool(url, min_size=1, max_size=4, timeout=10)
        listener = await asyncpg.connect(url, timeout=10)
        await listener.add_listener(CHANNEL, notified)
        try:
            yield {"pool": pool, "subscribers": subscribers}
        finally:
            await listener.close()
            await pool.close()

    async def read_room(conn: ConnDep) -> RoomOut:
        now = await conn.fetchval("SELECT now()")
        try:
            rows = await conn.fetch(CELLS, room)
            wrong = await conn.fetch(WRONG_LINES, room, wrong_lines)
        except asyncpg.UndefinedTableError:  # no kernel has recorded anything on this server yet
            rows, wrong = [], []
        except asyncpg.InsufficientPrivilegeError:
            raise HTTPException(status_code=503, detail=(
                f"this role may not read {TABLE}: as its owner, GRANT SELECT ON {TABLE} TO the "
                "view's role (INSTRUCTORS.md, \"The room view\")")) from None
        return summarize(room, now, rows, wrong, order)

    async def events(request: Request) -> AsyncIterator[ServerSentEvent]:
        q: asyncio.Queue[str] = asyncio.Queue()
        request.state.subscribers.add(q)
        try:
            yield ServerSentEvent(event="hello", data=room)
            while True:
                yield ServerSentEvent(event="verdict", data=await q.get())
        finally:
            request.state.subscribers.discard(q)

    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE.replace("{{ROOM}}", _html_escape(room)))

    app = FastAPI(title=f"Room {room}", lifespan=lifespan)
    app.add_api_route("/", page, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/api/room", read_room, methods=["GET"])
    app.add_api_route("/events", events, methods=["GET"], response_class=EventSourceResponse)
    return app


def _html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


# --- serving it without an extra package --------------------------------------------------------

async def serve(app: Any, host: str = "127.0.0.1", port: int = 8765,
                started: asyncio.Event | None = None) -> None:
    """Serve the app over HTTP/1.1 (one request per connection) until cancelled."""
    from asgi_lifespan import LifespanManager

    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a handler always runs in a task of its own
        handlers.add(task)
        try:
            await _handle(manager.app, reader, writer, (host, port))
        except asyncio.CancelledError:  # the server is stopping; this task ends here
            pass
        finally:
            handlers.discard(task)

    async with LifespanManager(app) as manager:
        server = await asyncio.start_server(handle, host, port)
        try:
            if started is not None:
                started.set()
            await asyncio.Event().wait()  # until cancelled (Ctrl+C)
        finally:  # an open event stream would keep wait_closed() waiting: end the handlers first
            server.close()
            running = list(handlers)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await server.wait_closed()


async def _handle(app: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  where: tuple[str, int]) -> None:
    import h11

    conn = h11.Connection(h11.SERVER)

    async def next_event() -> Any:
        while (event := conn.next_event()) is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        return event

    try:
        request = await next_event()
        if not isinstance(request, h11.Request):
            return
        body = b""
        while isinstance(event := await next_event(), h11.Data):
            body += event.data
        path, _, query = request.target.decode("latin-1").partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "http_version": "1.1", "method": request.method.decode(), "scheme": "http",
                 "path": unquote(path), "raw_path": path.encode(), "query_string": query.encode(),
                 "root_path": "", "headers": [(k.lower(), v) for k, v in request.headers],
                 "client": writer.get_extra_info("peername")[:2], "server": where}
        sent_body = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            while await reader.read(65536):  # the client closing the socket is the disconnect
                pass
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"connection", b"close")]
                writer.write(conn.send(h11.Response(status_code=message["status"], headers=headers)))
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    writer.write(conn.send(h11.Data(data=message["body"])))
                if not message.get("more_body"):
                    writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()

        await app(scope, receive, send)
    except (ConnectionError, h11.RemoteProtocolError):
        pass
    finally:
        writer.close()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Room {{ROOM}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:.25em .5em;font-size:.9em;text-align:left;vertical-align:top}
td.cell,td.n{text-align:center;white-space:nowrap}
.correct{background:#e3f6e3}.wrong{background:#fde8e8}.busy,.not-attempted{background:#fff6d8}
.error{background:#eee}small{color:#666}#live{font-size:.8em;color:#666}
section{display:inline-block;vertical-align:top;margin-right:2em}
</style></head><body>
<h1>Room {{ROOM}} <span id="live">connecting…</span></h1>
<p id="pace"></p>
<h2>Learners by exercise</h2><table id="grid"></table>
<section><h2>Stuck longest</h2><table id="stuck"></table></section>
<section><h2>Most frequent ❌ per exercise</h2><table id="wrong"></table></section>
<script>
const ICON={"correct":"✅","wrong":"❌","not attempted":"⏳","busy":"⏳","error":"⚠️"};
function esc(s){const d=document.createElement("div");d.textContent=s;return d.innerHTML}
function dur(s){return s<60?s+" s":s<3600?Math.floor(s/60)+" min":Math.floor(s/3600)+" h "+Math.floor(s%3600/60)+" min"}
function row(cells,tag){return "<tr>"+cells.map((c,i)=>"<"+(tag||"td")+(i<cells.length-1?' class="n"':"")+">"+c+"</"+(tag||"td")+">").join("")+"</tr>"}
async function refresh(){
  let r;
  try{const res=await fetch("api/room");r=await res.json();if(!res.ok)throw new Error(r.detail||res.status)}
  catch(e){document.getElementById("pace").textContent="⚠️ "+e.message;return}
  const at={};r.cells.forEach(c=>at[c.learner+"|"+c.exercise]=c);
  let g=row(["learner"].concat(r.exercises.map(esc)),"th");
  r.learners.forEach(l=>{g+="<tr><th>"+esc(l)+"</th>"+r.exercises.map(e=>{const c=at[l+"|"+e];
    if(!c)return "<td></td>";
    return '<td class="cell '+c.status.replace(" ","-")+'" title="'+esc(c.message)+'">'+ICON[c.status]+" <small>"+dur(c.seconds)+"</small></td>"}).join("")+"</tr>"});
  document.getElementById("grid").innerHTML=g;
  document.getElementById("stuck").innerHTML=row(["learner","exercise","for","❌ tries","last message"],"th")+
    r.stuck.map(s=>row([esc(s.learner),esc(s.exercise),dur(s.seconds),s.tries,esc((at[s.learner+"|"+s.exercise]||{}).message||"")])).join("");
  document.getElementById("wrong").innerHTML=row(["exercise","count","first line"],"th")+
    r.wrong_lines.map(w=>row([esc(w.exercise),w.count,esc(w.message)])).join("");
  const p=r.pace;
  document.getElementById("pace").textContent=r.learners.length+" learners; first check "+p.minutes+
    " min ago. The half-day agenda would be at lesson "+p.agenda_lesson+"; the median learner is in lesson "+
    (p.median_lesson||"-")+", with "+p.median_done+" exercise(s) ✅. Learners who finished / started each lesson: "+
    p.lessons.filter(x=>x.started).map(x=>x.lesson+" "+x.finished+"/"+x.started).join(", ")+".";
}
let pending=null;
function soon(){if(!pending)pending=setTimeout(()=>{pending=null;refresh()},200)}
const live=document.getElementById("live");
const source=new EventSource("events");
source.addEventListener("hello",()=>{live.textContent="live";refresh()});
source.addEventListener("verdict",soon);
source.onerror=()=>{live.textContent="reconnecting… (polling)"};
refresh();setInterval(refresh,15000);
</script></body></html>
"""
