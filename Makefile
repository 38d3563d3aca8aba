# Ballast: build, test, run. `make run` and `make test` are the two entry points.
SHELL := /bin/bash

# Debian packages the build needs (C libraries behind the system-library targets, and the
# tools that find them). Later components add theirs here.
DEB_PACKAGES := liblz4-dev libsqlite3-dev pkg-config etcd-client etcd-server curl util-linux mount e2fsprogs xfsprogs

SWIFT ?= swift
# Extra flags for every swift build/test call, e.g. SWIFT_FLAGS="--scratch-path .build-ci".
SWIFT_FLAGS ?=
# Extra flags for `swift test` alone, e.g. SWIFT_TEST_FLAGS="--filter WALTests".
SWIFT_TEST_FLAGS ?=
# Options for `make bench`, e.g. BENCH_FLAGS="--keys 2000000 --batch 100".
BENCH_FLAGS ?=

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RELEASE_BIN = $(shell $(SWIFT) build -c release $(SWIFT_FLAGS) --show-bin-path)

# Python packages of the interop tests, in .venv: gRPC stubs generated from our protos (CSI), and
# the official Kubernetes client that the API server's interop test drives.
PYTHON ?= python3
VENV := .venv
PY_PACKAGES := grpcio grpcio-tools kubernetes

.PHONY: deps pydeps build test run bench clean

## deps: install the missing Debian packages of DEB_PACKAGES (apt-get only if one is missing)
deps:
	@missing=""; \
	for pkg in $(DEB_PACKAGES); do \
	  dpkg -s "$$pkg" >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

## pydeps: a virtualenv in .venv with grpcio, grpcio-tools and kubernetes (only when one is missing)
pydeps:
	@if ! $(VENV)/bin/python -c "import grpc, grpc_tools, kubernetes" 2>/dev/null; then \
	  echo "installing into $(VENV): $(PY_PACKAGES)"; \
	  $(PYTHON) -m venv $(VENV) && $(VENV)/bin/python -m pip install --quiet $(PY_PACKAGES); \
	fi

## build: debug build of everything
build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

## test: build the tests, then run them (XCTest and Swift Testing), one suite at a time: the
## integration suites wait on processes they start, and on two cores suites run side by side
## starve each other's timing (about 2 minutes serially, against 1.5 in parallel)
test: deps pydeps
	$(SWIFT) build --build-tests $(SWIFT_FLAGS) && $(SWIFT) test --skip-build --no-parallel $(SWIFT_FLAGS) $(SWIFT_TEST_FLAGS)

## run: release build, then a short store benchmark (LSM beside SQLite, 200k keys)
run: deps
	$(SWIFT) build -c release $(SWIFT_FLAGS) --product ballast
	$(RELEASE_BIN)/ballast bench store --keys 200000

## bench: release build, then the full default store benchmark (1M keys)
bench: deps
	$(SWIFT) build -c release $(SWIFT_FLAGS) --product ballast
	$(RELEASE_BIN)/ballast bench store $(BENCH_FLAGS)

## clean: remove build products (package checkouts are kept)
clean:
	$(SWIFT) package clean $(SWIFT_FLAGS)
