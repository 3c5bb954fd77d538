# tlshub: `make demo` runs the main job, `make test` runs every test.
# Each target installs what it needs (scripts/setup) on a fresh machine.
SHELL := /bin/bash
.PHONY: all setup kernel kmod helper test demo bench-kernel bench bench-mapping bench-compare bench-scale bench-churn bench-soak clean

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

# The benchmark kernel (kernel/bench.config: no sanitizers or lock debugging)
# and its tlshub.ko; every bench target runs on it. Never built by `make test`.
bench-kernel:
	@scripts/setup bench
	@TLSHUB_KERNEL=bench scripts/kernel-build >/dev/null
	@TLSHUB_KERNEL=bench scripts/kmod-build

# Plain vs secured vs kTLS-ceiling pod-to-pod (bench/tlshub-bench), in one
# kernel serving both nodes and across two VMs; not part of `make test`.
# Results: bench/results/.
bench: bench-kernel helper
	@TLSHUB_KERNEL=bench BENCH_TOPOLOGY=one bench/tlshub-bench
	@TLSHUB_KERNEL=bench BENCH_TOPOLOGY=two bench/tlshub-bench
	@bench/plot.py

# What the module costs connections it leaves alone: unmapped connect/close
# churn with it loaded vs unloaded (bench/unmapped-churn); not part of `make test`.
bench-churn: bench-kernel helper
	@TLSHUB_KERNEL=bench bench/unmapped-churn

# Secured connect/close churn for 5 minutes, then nothing may have grown
# (bench/soak); not part of `make test`.
bench-soak: bench-kernel helper
	@TLSHUB_KERNEL=bench bench/soak

# Mapping churn benchmark in the VM (bench/mapping-churn); not part of `make test`.
bench-mapping: bench-kernel helper
	@TLSHUB_KERNEL=bench bench/mapping-churn

# Scale: 10k connections held open (plain, kTLS ceiling, secured) in one VM;
# tlshub's slab bytes per flow and the flows dump time (bench/scale).
bench-scale: bench-kernel helper
	@TLSHUB_KERNEL=bench bench/scale

# Issue-8 comparison across two VMs: plain TCP, tlshub (tlshubd agents), a
# stunnel proxy pair, kernel WireGuard (bench/compare); not part of `make test`.
# Results: bench/results/compare-summary.json, bench/results/compare-raw/.
bench-compare: bench-kernel helper
	@TLSHUB_KERNEL=bench bench/compare

clean:
	@. scripts/common.sh && d=$$(kernel_dir) && [ -d "$$d/src" ] && \
		$(MAKE) -s -C "$$d/src" M=$(CURDIR)/kmod LLVM=$$LLVM_SUFFIX clean || true
	@rm -rf helper/target
