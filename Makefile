# mmzsq — the two commands a newcomer needs:
#   make demo    set everything up, then run the main job
#   make test    set everything up, then run the test suite
VENV      ?= .venv
PY        := $(VENV)/bin/python
SHARED    ?= ../shared
WORK_DIR  ?= work_dirs/demo

.PHONY: install test demo clean

install:
	bash tools/misc/install.sh $(VENV)

test: install
	$(PY) -m pytest -q tests

demo: install
	$(PY) tools/demo.py --work-dir $(WORK_DIR)

clean:
	rm -rf work_dirs .pytest_cache
