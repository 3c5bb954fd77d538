# tlshub: `make demo` runs the main job, `make test` runs every test.
# Each target installs what it needs (scripts/setup) on a fresh machine.
SHELL := /bin/bash
.PHONY: all setup kernel kmod helper test demo bench bench-mapping bench-compare clean

all: kmod helper

setup:
	@scripts/setup

kernel: setup
	@scripts/kernel-build >/dev/null

kmod: kernel
	@scripts/kmod-build

helper: setup
	@. scripts/common.sh && cargo build --quiet --release --manifest-path helper/Cargo.toml --workspace

test: kmod helper
	@scripts/test

demo: kmod helper
	@scripts/demo

# Plain vs secured vs kTLS-ceiling pod-to-pod across two VMs (bench/tlshub-bench);
# not part of `make test`. Results: bench/results/.
bench: kmod helper
	@bench/tlshub-bench

# Mapping churn benchmark in the VM (bench/mapping-churn); not part of `make test`.
bench-mapping: kmod helper
	@bench/mapping-churn

# Issue-8 comparison across two VMs: plain TCP, tlshub (tlshubd agents), a
# stunnel proxy pair, kernel WireGuard (bench/compare); not part of `make test`.
# Results: bench/results/compare-summary.json, bench/results/compare-raw/.
bench-compare: kmod helper
	@bench/compare

clean:
	@. scripts/common.sh && d=$$(kernel_dir) && [ -d "$$d/src" ] && \
		$(MAKE) -s -C "$$d/src" M=$(CURDIR)/kmod LLVM=$$LLVM_SUFFIX clean || true
	@rm -rf helper/target
