# Vigil: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export ORT_DYLIB_PATH ?= $(CURDIR)/.deps/onnxruntime/libonnxruntime.so.1.31.1
export PYTHONPATH := $(CURDIR)/.deps/python$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: setup build test lint demo bench clean deb deb-check

## setup: Debian packages, ONNX Runtime, the model, sample footage (idempotent)
setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --workspace --all-targets

## test: setup, every test of the workspace, clippy, rustfmt
test: setup
	@# The test harness builds the binaries itself when run alone; here they are built just above.
	$(CARGO) build --workspace --bins
	VIGIL_TESTS_NO_BUILD=1 $(CARGO) nextest run --workspace --no-fail-fast
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --all --check
	@# The packages a field tech installs: build, install on this machine, check units and binaries.
	$(MAKE) --no-print-directory deb-check

## demo: sample camera -> agent (detection + a signed clip) -> offline verification
demo: setup
	$(CARGO) build --release --workspace --bins
	@bash scripts/demo.sh

## bench: benchmarks under bench/, rewrites BENCHMARKS.md (QUICK=1 for a short run)
bench: setup
	$(CARGO) build --release --workspace --bins
	@QUICK=$(QUICK) bash bench/run.sh

## deb: Debian packages for agent and hub into target/debian/ (cargo-deb)
deb: setup
	@bash scripts/deb.sh

## deb-check: install the packages on this machine and check units and binaries (root)
deb-check: deb
	@bash scripts/deb-check.sh

clean:
	$(CARGO) clean
