# Async Databases in Python. `make lab` to learn, `make test` to check everything.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NB ?=

.PHONY: lab test test-browser test-hub install doctor progress verify reset update build db-stop db-reset db-cleanup-shared room clean help
help:
	@echo "make lab               start JupyterLab on the welcome notebook (installs on first run)"
	@echo "make test              run the whole test suite (what CI runs)"
	@echo "make test-browser      run lessons and a workbook in JupyterLab in a real Chromium"
	@echo "make test-hub          two learners through a real JupyterHub on 127.0.0.1 (instructors)"
	@echo "make doctor            check Python, packages, data, SQLite and PostgreSQL"
	@echo "make progress          table of your exercises and what to do next"
	@echo "make verify [NB=04]    re-run your workbooks in fresh kernels and report each check"
	@echo "make reset NB=04       restore a workbook; your copy is saved in .course/backups/"
	@echo "make update            take the new version of the course; your changed notebooks are saved first"
	@echo "make build             regenerate exercises/ from solutions/ (course authors)"
	@echo "make db-stop           stop the course's PostgreSQL"
	@echo "make db-reset          stop it and delete it; it is rebuilt when next needed"
	@echo "make db-cleanup-shared instructors: drop every course database on the server in DATABASE_URL"
	@echo "make room ROOM=name    instructors: the live view of the room's checks, on 127.0.0.1:8765"
	@echo "make install           reinstall the pinned packages into .venv"
	@echo "make clean             delete .venv (your work and .course/ stay)"

# tasks.py does the work, so that `python tasks.py lab` and `python tasks.py test` run the very same
# steps on a machine without make. It (re)installs when the pins change: with uv (from PATH, or
# put into .venv from PyPI), or with pip when uv cannot be had. Nothing comes from outside PyPI.
export VENV
TASKS := $(PYTHON) tasks.py

$(STAMP): pyproject.toml constraints.txt
	@$(TASKS) install

# Reinstall even though the pins have not changed (a package removed or broken by hand).
install:
	@$(TASKS) install --force

lab:
	@$(TASKS) lab

test:
	@$(TASKS) test

# The browser test: Debian's Chromium (installed with apt-get when missing) driven by Playwright.
test-browser:
	@$(TASKS) install --extra test
	@$(BIN)/python tests/browser/run.py
	@$(BIN)/python tests/browser/room.py

# A real JupyterHub with two learners (tests/test_hub.py): kept out of `make test` for its minutes.
test-hub:
	@$(TASKS) install --extra test
	@COURSE_TEST_HUB=1 $(BIN)/python -m pytest -q -p no:xdist tests/test_hub.py

doctor: $(STAMP)
	@$(BIN)/python -m course doctor

progress: $(STAMP)
	@$(BIN)/python -m course progress

verify: $(STAMP)
	@$(BIN)/python -m course verify $(NB)

reset: $(STAMP)
	@$(BIN)/python -m course reset $(NB)

# Your changed notebooks are saved in .course/backups/ first; new pins are installed after.
update: $(STAMP)
	@$(BIN)/python -m course update
	@$(MAKE) --no-print-directory $(STAMP)

build: $(STAMP)
	$(BIN)/python -m course build $(NB)

db-stop: $(STAMP)
	@$(BIN)/python -m course db stop

db-reset: $(STAMP)
	@$(BIN)/python -m course db reset

# After a workshop (INSTRUCTORS.md): every learner's databases and the template, by their names.
db-cleanup-shared: $(STAMP)
	@$(BIN)/python -m course db cleanup-shared $(if $(DRY),--dry-run)

# The instructor's live view of a workshop (INSTRUCTORS.md, "The room view"): loopback unless HOST=.
room: $(STAMP)
	@$(BIN)/python -m course room $(if $(ROOM),--room $(ROOM)) $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

clean:
	rm -rf $(VENV)
