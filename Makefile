# The two first commands: `make demo` (the whole toolkit on generated data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PI_VENV ?= .venv-pi
BIN := $(VENV)/bin
PYTEST_ARGS ?= -m "not slow"

.PHONY: setup demo lint test test-slow test-pi clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[all]"
	touch $@

demo: setup
	$(BIN)/edgeport demo --out demo-out

# ruff (pyproject's [tool.ruff]): every remaining noqa says why
lint: setup
	$(BIN)/ruff check .

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The slow suite (about 20 tests: the backbone x head export matrix, ResNet50V2 on flowers, the service soak);
# not in CI's 30 minutes. -v and --durations=0: one line per test and every test's time, for the record.
test-slow: setup
	$(BIN)/python -m pytest -m slow -v --durations=0

# The Raspberry Pi set-up: numpy<2 + tflite-runtime + OpenCV (+ paho-mqtt for the MQTT sink, selenium for the
# live-view test), edgeport with --no-deps, no TensorFlow.
# Models are exported first with the workstation venv, then the runtime and benchmark tests run on them.
# EDGEPORT_TEST_JOB=pi: the skips tests/allowed_skips.py allows this job (no TensorFlow, onnxruntime, ...).
test-pi: setup
	$(PYTHON) -m venv $(PI_VENV)
	$(PI_VENV)/bin/pip install -q "numpy<2" "tflite-runtime==2.14.*" "opencv-python-headless<4.11" pytest "paho-mqtt>=2" selenium
	$(PI_VENV)/bin/pip install -q --no-deps -e .
	rm -rf .pi-fixture && $(BIN)/python tests/tiny.py .pi-fixture
	EDGEPORT_TEST_JOB=pi EDGEPORT_TEST_EXPORT_DIR=$(CURDIR)/.pi-fixture/export $(PI_VENV)/bin/python -m pytest tests/runtime tests/benchmarks $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(PI_VENV) .pi-fixture demo-out .pytest_cache
