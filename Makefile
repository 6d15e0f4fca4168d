# dqc — common tasks. `make demo` builds the CLI and runs it on a DiT; `make test` lints
# and runs every test of the workspace.

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
	$(DQC) new-model dit --hidden 384 --depth 12 --heads 6 --patch 2 --latent 32 -o $(DEMO)/dit-s.dqc
	$(DQC) inspect $(DEMO)/dit-s.dqc
	$(DQC) new-model dit --preset tiny -o $(DEMO)/dit-tiny.dqc
	$(DQC) make-inputs $(DEMO)/dit-tiny.dqc --batch 2 --seed 0 -o $(DEMO)/in.npz
	$(DQC) eval $(DEMO)/dit-tiny.dqc --inputs $(DEMO)/in.npz --outputs $(DEMO)/out.npz
	$(DQC) import models/fixtures/dit/model.onnx -o $(DEMO)/dit-onnx.dqc
	$(DQC) eval models/fixtures/dit/model.onnx --inputs models/fixtures/dit/inputs.npz --outputs $(DEMO)/dit-onnx-out.npz

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: setup lint
	$(CARGO) test --workspace

fmt:
	$(CARGO) fmt --all

clean-demo:
	rm -rf $(DEMO)
