# make book | make test | make reproduce PROFILE=cpu|gpu|smoke | make bench | make clean
# Each target creates .venv on first use: the CPU build of torch first, then the package with
# its book, test and hf extras (reinstalled only when pyproject.toml changes).

PYTHON_SYS ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
PROFILE    ?= cpu
TORCH      := torch==2.13.0
NOTEBOOKS   = $(sort $(wildcard notebooks/*.ipynb))
NBVAL_SANITIZE = $(wildcard tests/nbval_sanitize.cfg)

.PHONY: venv test book notebooks html reproduce bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[book,test,hf]"
	touch $(STAMP)

# Unit and integration tests (tests/, including the offline browser check of the built book),
# then nbval over the committed notebooks. pytest's exit code 5 ("no tests collected") is fine
# for nbval while notebooks/ is empty.
test: $(STAMP)
	$(PY) -m pytest tests
ifneq ($(NOTEBOOKS),)
	$(PY) -m pytest --nbval --nbval-current-env $(if $(NBVAL_SANITIZE),--nbval-sanitize-with $(NBVAL_SANITIZE)) $(NOTEBOOKS) \
		|| test $$? -eq 5
else
	@echo "no notebooks/*.ipynb yet: nbval skipped"
endif

# Execute every notebook in place (papermill, profile cpu, this venv's python as the kernel),
# clean its metadata, then build the HTML with execution off; Sphinx warnings fail the build.
book: notebooks html

notebooks: $(STAMP)
ifneq ($(NOTEBOOKS),)
	$(PY) -m ssmax.notebooks execute --profile cpu $(NOTEBOOKS)
endif

html: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "open _build/html/index.html"

reproduce: $(STAMP)
	$(PY) -m ssmax reproduce --profile $(PROFILE)

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf _build .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
