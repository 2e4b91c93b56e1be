# The two commands that matter: `make run` and `make test`. See README.md.
PYTHON ?= python3
PROTOS := $(wildcard protos/interview/v1/*.proto)
APT_PACKAGES := redis-server flite espeak-ng sox tesseract-ocr fonts-dejavu-core openssl chromium chromium-driver

.PHONY: install install-apt proto check-proto run test bench loadtest clean

install: ## pip packages (all services + dev tools)
	$(PYTHON) -m pip install -q -e '.[all,dev]'
	# silero-vad ships the ONNX model; its declared deps would pull torch, so no deps.
	$(PYTHON) -m pip install -q --no-deps 'silero-vad==6.2.3'

install-apt: ## Debian packages the services and tests use (needs root)
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES)

proto: ## regenerate the Python stubs (and typed .pyi) from protos/
	$(PYTHON) -m grpc_tools.protoc -I protos --python_out=. --grpc_python_out=. \
		--mypy_out=. --mypy_grpc_out=. $(PROTOS)

run: ## start every service on embedded defaults (no API keys) and print the URL to open
	$(PYTHON) -m deploy.local

test: ## the whole test suite (pytest's exit 5, "no tests collected", is not an error)
	$(PYTHON) -m pytest -q tests || [ $$? -eq 5 ]

bench: ## benchmarks recorded in docs/benchmarks.md (long; not part of make test)
	$(PYTHON) -m tests.load.bench

loadtest: ## a longer load run of every driver (see README "Load testing")
	$(PYTHON) -m tests.load.bench --soak

clean:
	rm -rf .run .pytest_cache
