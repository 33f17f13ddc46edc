# mmzsq — the two commands a newcomer needs:
#   make demo    set everything up, then run the main job
#   make test    set everything up, then run the test suite
VENV      ?= .venv
PY        := $(VENV)/bin/python
SHARED    ?= ../shared
WORK_DIR  ?= work_dirs/demo
# the suite runs in 2 pytest-xdist processes of 1 thread each (2 cores)
TEST_WORKERS ?= 2

.PHONY: install test demo clean

install:
	bash tools/misc/install.sh $(VENV)

test: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -q -n $(TEST_WORKERS) \
	  --dist worksteal tests

demo: install
	$(PY) tools/demo.py --work-dir $(WORK_DIR)

clean:
	rm -rf work_dirs .pytest_cache
