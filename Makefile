# Ballast: build, test, run. `make run` and `make test` are the two entry points.
SHELL := /bin/bash

# Debian packages the build needs (C libraries behind the system-library targets, and the
# tools that find them). Later components add theirs here.
# libc6-dev: glibc's static libc.a, which ballast-shim links (Package.swift: -static-executable).
DEB_PACKAGES := libc6-dev liblz4-dev libsqlite3-dev pkg-config etcd-client etcd-server curl util-linux mount e2fsprogs xfsprogs fdisk runc crun busybox-static containernetworking-plugins nftables iproute2

SWIFT ?= swift
# Extra flags for every swift build/test call, e.g. SWIFT_FLAGS="--scratch-path .build-ci".
SWIFT_FLAGS ?=
# Extra flags for `swift test` alone, e.g. SWIFT_TEST_FLAGS="--filter WALTests".
SWIFT_TEST_FLAGS ?=
# Tests run at once by `make test` (Swift Testing's maximum parallelization width).
TEST_WIDTH ?= 4
# Options for `make bench`, e.g. BENCH_FLAGS="--keys 2000000 --batch 100".
BENCH_FLAGS ?=

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RELEASE_BIN = $(shell $(SWIFT) build -c release $(SWIFT_FLAGS) --show-bin-path)

# Python packages of the interop tests, in .venv: gRPC stubs generated from our protos (CSI), and
# the official Kubernetes client that the API server's interop test drives.
PYTHON ?= python3
VENV := .venv
PY_PACKAGES := grpcio grpcio-tools kubernetes

# `make fuzz`: libFuzzer over every fuzz target (or FUZZ_TARGETS="hpack wal-record") for
# FUZZ_SECONDS each, in its own build folder (.build-fuzz) with coverage and AddressSanitizer.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
FUZZER_LIB = $(firstword $(wildcard $(dir $(realpath $(shell command -v swiftc)))../lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a))
FUZZ_BUILD = $(SWIFT) build -c release --scratch-path .build-fuzz --product ballast-fuzz -Xswiftc -enable-testing \
	-Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
	-Xswiftc -DBALLAST_LIBFUZZER -Xlinker $(FUZZER_LIB) -Xlinker -lstdc++

.PHONY: deps pydeps build test run bench fuzz clean

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

## test: build the tests, then run them (Swift Testing), suites in parallel: the test helpers
## await processes and timers without holding a thread of the cooperative pool, and CPU-heavy
## test bodies run on threads of their own (`onOwnThread`). TEST_WIDTH bounds how many tests run
## at once: with all of them started together, the pool's queue grows so long that the tests
## which wait on a clock starve (4 keeps a 2-core machine busy without that). Suites that
## measure this process's memory ("MemoryBound" in their names) run afterwards, each in a test
## process of its own, so that neither another test's allocations nor the heap an earlier suite
## left behind count.
test: deps pydeps
	$(SWIFT) build --build-tests $(SWIFT_FLAGS)
	$(SWIFT) test --skip-build --experimental-maximum-parallelization-width $(TEST_WIDTH) --skip MemoryBound $(SWIFT_FLAGS) $(SWIFT_TEST_FLAGS)
	@suites=$$($(SWIFT) test list --skip-build $(SWIFT_FLAGS) | grep MemoryBound | cut -d/ -f1 | sort -u); \
	  [ -n "$$suites" ] || { echo "no MemoryBound suite found"; exit 1; }; \
	  for suite in $$suites; do \
	    $(SWIFT) test --skip-build --filter "$$suite/" $(SWIFT_FLAGS) $(SWIFT_TEST_FLAGS) || exit 1; \
	  done

## run: release build, then `ballast up` in the foreground (a 3-node cluster in .ballast/ and volumes/) with fixtures/demo/ applied once it is ready; Ctrl-C stops it, the data stays
run: deps
	$(SWIFT) build -c release $(SWIFT_FLAGS) --product ballast
	$(SWIFT) build -c release $(SWIFT_FLAGS) --product ballast-shim
	@rm -f .ballast/up.ready; \
	( while [ ! -f .ballast/up.ready ]; do kill -0 $$$$ 2>/dev/null || exit 0; sleep 0.5; done; \
	  if command -v kubectl >/dev/null; then \
	    if kubectl --kubeconfig .ballast/admin.kubeconfig apply -f fixtures/demo/; then \
	      echo "demo applied: a pod writing every second to its volume. Try:"; \
	    else echo "the demo was not applied as it is in fixtures/demo/ (kubectl says why above; a claim expanded earlier is kept). Try:"; fi; \
	    echo "  export KUBECONFIG=$$PWD/.ballast/admin.kubeconfig" && \
	    echo "  kubectl get pvc,pv,volumeattachments,pods -o wide" && \
	    echo "  kubectl exec demo-writer -- tail -3 /data/log" && \
	    echo "  kubectl exec demo-writer -- df -h /data" && \
	    echo "Ctrl-C stops the cluster (the data stays for the next make run)."; \
	  else echo "kubectl is not on the PATH: the demo (fixtures/demo/) is not applied"; fi ) & \
	exec $(RELEASE_BIN)/ballast up --data-dir .ballast --volumes-dir volumes

## bench: release build, then the full default store benchmark (1M keys)
bench: deps
	$(SWIFT) build -c release $(SWIFT_FLAGS) --product ballast
	$(RELEASE_BIN)/ballast bench store $(BENCH_FLAGS)

## fuzz: build ballast-fuzz with libFuzzer (.build-fuzz) and fuzz each target for FUZZ_SECONDS;
## what it finds goes to Tests/Fuzz/Corpus/<target>/ (crashes as crash-*: keep them as regressions)
fuzz: deps
	@[ -n "$(FUZZER_LIB)" ] || { echo "libclang_rt.fuzzer_no_main is not in this Swift toolchain"; exit 1; }
	$(FUZZ_BUILD)
	@bin=$$($(FUZZ_BUILD) --show-bin-path)/ballast-fuzz; \
	targets="$(FUZZ_TARGETS)"; [ -n "$$targets" ] || targets=$$($$bin list | cut -f1); \
	for t in $$targets; do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  $$bin libfuzzer $$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

## clean: remove build products (package checkouts are kept)
clean:
	$(SWIFT) package clean $(SWIFT_FLAGS)
