# The two commands of the README.
#   make run    set up .venv and train the default experiment (LCN convnet on the embedded digits)
#   make test   set up .venv and run the default test tier
PYTHON ?= python3
VENV ?= .venv
WORKDIR ?= runs/lcn_convnet_digits
CONFIG ?= experiments/configs/lcn_convnet_digits.py
PYTEST_ARGS ?=

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,notebooks,viz]'
	touch $@

.PHONY: install run test test-slow bench
install: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/python -m experiments.main --config=$(CONFIG) --workdir=$(WORKDIR)

# pytest exits 5 when it collects no tests: that is not a failure of the code.
test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n 2 -q $(PYTEST_ARGS) || { status=$$?; \
	  if [ $$status -eq 5 ]; then echo "pytest: no tests collected"; else exit $$status; fi; }

test-slow: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m slow $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	$(VENV)/bin/python benchmarks/lenet5_throughput.py
