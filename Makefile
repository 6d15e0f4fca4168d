# dqc — common tasks. `make demo` builds the CLI, compiles a DiT for the CPU and runs it;
# `make test` lints
# and runs every test of the workspace, then the CUDA executor's tests against a fake
# driver (feature `cuda`: no GPU needed; the tests that need one are #[ignore]d). Both
# `cuda` steps name the whole workspace so that dependencies keep the workspace's
# features and are not built a second time.

CARGO ?= cargo
DQC := target/release/dqc
DEMO := target/demo

.PHONY: all setup build demo test lint fmt clean-demo

all: build

setup:
	./scripts/setup.sh

build: setup
	$(CARGO) build --release --bin dqc

demo: build
	mkdir -p $(DEMO)
	$(DQC) compile models/fixtures/dit/model.onnx --target cpu -o $(DEMO)/dit.dqcplan
	$(DQC) run $(DEMO)/dit.dqcplan --inputs models/fixtures/dit/inputs.npz --outputs $(DEMO)/dit-out.npz
	$(DQC) inspect $(DEMO)/dit.dqcplan
	$(DQC) compile models/fixtures/dit/model.onnx --target sm_100 -o $(DEMO)/dit-sm_100.dqcplan
	$(DQC) inspect $(DEMO)/dit-sm_100.dqcplan
	$(DQC) new-model dit --preset dit-s-2 -o $(DEMO)/dit-s.dqc
	$(DQC) compile $(DEMO)/dit-s.dqc --target cpu -o $(DEMO)/dit-s.dqcplan
	$(DQC) bench $(DEMO)/dit-s.dqcplan --dim B=2 --iters 5

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets --features dqc-runtime/cuda -- -D warnings

test: setup lint
	$(CARGO) test --workspace
	$(CARGO) test --workspace --features dqc-runtime/cuda --test cuda_fake --test cuda

fmt:
	$(CARGO) fmt --all

clean-demo:
	rm -rf $(DEMO)
