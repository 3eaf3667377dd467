# Async Databases in Python. `make lab` to learn, `make test` to check everything.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The test suite keeps its databases and progress apart from yours.
TEST_HOME := $(CURDIR)/.course/test
NB ?=

.PHONY: lab test test-browser install doctor progress verify reset update build db-stop db-reset db-cleanup-shared clean help
help:
	@echo "make lab               start JupyterLab on the welcome notebook (installs on first run)"
	@echo "make test              run the whole test suite (what CI runs)"
	@echo "make test-browser      run lessons and a workbook in JupyterLab in a real Chromium"
	@echo "make doctor            check Python, packages, data, SQLite and PostgreSQL"
	@echo "make progress          table of your exercises and what to do next"
	@echo "make verify [NB=04]    re-run your workbooks in fresh kernels and report each check"
	@echo "make reset NB=04       restore a workbook; your copy is saved in .course/backups/"
	@echo "make update            take the new version of the course; your changed notebooks are saved first"
	@echo "make build             regenerate exercises/ from solutions/ (course authors)"
	@echo "make db-stop           stop the course's PostgreSQL"
	@echo "make db-reset          stop it and delete it; it is rebuilt when next needed"
	@echo "make db-cleanup-shared instructors: drop every course database on the server in DATABASE_URL"
	@echo "make install           reinstall the pinned packages into .venv"
	@echo "make clean             delete .venv (your work and .course/ stay)"

# (Re)install when the pins change. Nothing is downloaded outside PyPI.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 13)))' || \
	  { echo "The course needs Python 3.11, 3.12 or 3.13; '$(PYTHON)' is another. Try: make $(MAKECMDGOALS) PYTHON=python3.12"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
	@# jsonschema's optional IRI format check builds a parser on every import, which cost JupyterLab
	@# 3-5 s of each start here; nothing in the course validates IRIs, and jsonschema runs without it.
	@$(BIN)/python -m pip uninstall --quiet --yes rfc3987-syntax lark 2>/dev/null || true
	@touch $(STAMP)

# Reinstall even though the pins have not changed (a package removed or broken by hand).
install:
	@rm -f $(STAMP)
	@$(MAKE) --no-print-directory $(STAMP)

# Jupyter refuses to run as root unless told; containers often run as root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
# .jupyter/ holds the course's JupyterLab settings: no news pop-up, no update check, the build
# metadata (*.egg-info) hidden, no language-server scan, and kernels on local sockets (IPC) rather
# than TCP ports. Settings you change in JupyterLab still win.
LAB_ENV := env JUPYTER_CONFIG_PATH="$(CURDIR)/.jupyter$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH))"
# root_dir: without it, Jupyter serves only the folder of the file it opens (notebooks/), and
# the workbooks in exercises/ and solutions/ could not be reached from the file browser.
lab: $(STAMP)
	$(LAB_ENV) $(BIN)/jupyter-lab $(LAB_ARGS) --ServerApp.root_dir="$(CURDIR)" notebooks/00-welcome.ipynb

test: $(STAMP)
	@rm -rf $(TEST_HOME)
	COURSE_HOME=$(TEST_HOME) $(BIN)/python -m pytest -n 2 --dist loadscope -q
	COURSE_HOME=$(TEST_HOME) $(BIN)/python tests/after_suite.py

# The browser test: Debian's Chromium (installed with apt-get when missing) driven by Playwright.
BROWSER_STAMP := $(VENV)/.installed-browser-test
$(BROWSER_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	@$(BIN)/python -m pip uninstall --quiet --yes rfc3987-syntax lark 2>/dev/null || true
	@touch $(BROWSER_STAMP)

test-browser: $(BROWSER_STAMP)
	@$(BIN)/python tests/browser/run.py

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

clean:
	rm -rf $(VENV)
