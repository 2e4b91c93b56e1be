# The two commands that matter: `make run` and `make test`. See README.md.
# Both install what is missing first: Debian packages (as root; else a list of what to install)
# and the Python packages, into the project's virtualenv .venv (the one CI uses too).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROTOS := $(wildcard protos/interview/v1/*.proto)
# deploy/system_deps.py installs (or lists) these: keep the two lists the same.
APT_PACKAGES := python3-venv redis-server flite espeak-ng sox tesseract-ocr fonts-dejavu-core openssl chromium chromium-driver

.PHONY: faults install install-apt system-deps proto check-proto check-images run test fuzz soak bench loadtest clean distclean

install: system-deps $(VENV)/.installed ## everything `make run` and `make test` need (idempotent)

system-deps: ## Debian packages: installed as root, else listed
	@$(PYTHON) deploy/system_deps.py

$(VENV)/.installed: pyproject.toml Makefile $(wildcard deploy/no-deps/*.txt)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[all,dev]'
	# Model wheels (silero-vad, pipecat-ai for Smart Turn): their declared deps would pull torch, so no deps.
	for f in deploy/no-deps/*.txt; do $(PY) -m pip install -q --disable-pip-version-check --no-deps -r $$f || exit 1; done
	touch $@

install-apt: ## Debian packages the services and tests use (needs root), all of them
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES)

proto: $(VENV)/.installed ## regenerate the Python stubs (and typed .pyi) from protos/
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --grpc_python_out=. \
		--mypy_out=. --mypy_grpc_out=. $(PROTOS)

run: install ## start every service on embedded defaults (no API keys) and print the URL to open
	$(PY) -m deploy.local

check-images: install ## each service from a clean venv holding only its extra (what its image carries) reaches SERVING
	$(PY) -m deploy.check_images

test: install ## the whole test suite (pytest's exit 5, "no tests collected", is not an error)
	$(PY) -m pytest -q tests || [ $$? -eq 5 ]

fuzz: install ## long random fuzzing of every endpoint (make test runs the same fuzzers derandomized, fewer cases)
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} $(PY) -m pytest -q -p no:cacheprovider tests/fuzz

soak: install ## N scripted candidates for 10 minutes: RSS, tasks, threads, fds, lost replies (docs/reliability.md)
	$(PY) -m tests.load.soak --candidates $${SOAK_CANDIDATES:-20} --seconds $${SOAK_SECONDS:-600}

FAULT_RUNS ?= 10
faults: install ## the orchestrator fault suite FAULT_RUNS times each; measurements appended to .run/faults.jsonl (docs/reliability.md)
	mkdir -p .run && FAULT_RUNS=$(FAULT_RUNS) FAULT_RESULTS=.run/faults.jsonl $(PY) -m pytest -q -s tests/faults tests/orchestrator/test_abandoned.py -k "not sweeper and not no_session"
	$(PY) -m tests.faults.summary .run/faults.jsonl

bench: install ## benchmarks recorded in docs/benchmarks.md (long; not part of make test)
	$(PY) -m tests.load.bench

loadtest: install ## every driver at increasing load + the full stack: docs/benchmarks.md tables, docs/loadtest/*.png (LOADTEST_SCALE=small|full)
	$(PY) -m tests.load.loadtest --scale $${LOADTEST_SCALE:-full}

clean:
	rm -rf .run .pytest_cache

distclean: clean ## also the virtualenv
	rm -rf $(VENV)
