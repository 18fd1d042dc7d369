# The README's commands. Everything installs itself into .venv on first use.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synthqa-installed
TINY_MODEL := .cache/tiny-model
TINY_LORA := .cache/tiny-lora
MODEL ?= $(TINY_MODEL)
PORT ?= 50051
OUT ?= out/pairs.jsonl
# Small KV cache on CPU: the tiny model needs little, and the machines are shared.
export VLLM_CPU_KVCACHE_SPACE ?= 1

.PHONY: help setup run serve test test-unit bench bench-chunker bench-chunker-memory bench-quality bench-dedup bench-client bench-ingest bench-ray bench-record lint protos clean fuzz soak
# `make` alone lists the targets; the README's commands name theirs.
.DEFAULT_GOAL := help

# Each target's description is its `## target: ...` line, one line; `#` lines below it add
# details that `make help` leaves out.
## help: this list of targets
help:
	@echo "make <target> [VARIABLE=value ...]; each target sets itself up first where it needs to"
	@awk '/^## [a-z-]+: / { name = substr($$2, 1, length($$2) - 1); \
		printf "  %-22s %s\n", name, substr($$0, length(name) + 6) }' $(firstword $(MAKEFILE_LIST))

## setup: the virtual environment in .venv, the tiny model and its LoRA adapter (once)
setup: $(STAMP) $(TINY_MODEL)/config.json $(TINY_LORA)/adapter_config.json

$(STAMP): pyproject.toml client/pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh
	touch $@

$(TINY_MODEL)/config.json: scripts/make_tiny_model.py samples/lighthouses.txt | $(STAMP)
	$(PY) scripts/make_tiny_model.py $(TINY_MODEL)

# A LoRA adapter for the tiny model: the tests of per-call adapters use it.
$(TINY_LORA)/adapter_config.json: scripts/make_tiny_lora.py $(TINY_MODEL)/config.json | $(STAMP)
	$(PY) scripts/make_tiny_lora.py $(TINY_MODEL) $(TINY_LORA)

## run: start a server on MODEL, generate pairs for the sample document into OUT, stop the server
run: setup
	MODEL="$(MODEL)" PORT="$(PORT)" OUT="$(OUT)" PY="$(PY)" SERVER_ARGS="$(SERVER_ARGS)" \
		scripts/run_demo.sh

## serve: the server alone, in the foreground (Ctrl-C stops it)
serve: setup
	$(PY) -m synthqa.server --model "$(MODEL)" --port $(PORT) $(if $(filter $(TINY_MODEL),$(MODEL)),--max-model-len 2048,) $(SERVER_ARGS)

## bench: every arm on the same workload (BENCH_ARGS="--workload full": the sweep); bench/results/
# Writes bench/results/. ENGINE_ARGS replaces the tiny model's engine flags in every arm.
bench: setup
	PYTHONPATH=bench $(PY) -m synthqa_bench --model "$(MODEL)" \
		$(if $(ENGINE_ARGS),--engine-args "$(ENGINE_ARGS)",) $(BENCH_ARGS)

## bench-chunker: synthqa's chunker against the raw fast tokenizer, up to the largest document
bench-chunker: setup
	PYTHONPATH=bench $(PY) -m synthqa_bench.chunker_bench --model "$(MODEL)" $(BENCH_ARGS)

## bench-chunker-memory: memory a document costs while chunked, by script (English, CJK, emoji)
bench-chunker-memory: setup
	PYTHONPATH=bench $(PY) -m synthqa_bench.chunker_memory --model "$(MODEL)" $(BENCH_ARGS)

## bench-client: the clients' own CPU per 1,000 events against a stand-in server (no engine)
bench-client: setup
	PYTHONPATH=bench $(PY) -m synthqa_bench.client_cost $(BENCH_ARGS)

## bench-quality: records/s with the judge and dedup on and off, a seeded call from the cache
bench-quality: setup
	PYTHONPATH=bench $(PY) -m synthqa_bench.quality_bench --model "$(MODEL)" $(BENCH_ARGS)

## bench-dedup: dedup's time per 1,000 records, memory per kept record, recall of near copies
# BENCH_ARGS="--baseline CHECKOUT" measures that checkout's dedup beside this one's. No server.
bench-dedup: setup
	PYTHONPATH=bench $(PY) -m synthqa_bench.dedup_bench $(BENCH_ARGS)

## bench-ingest: extraction's pages/s per format against the bare libraries (no server)
# BENCH_ARGS="--serve" (the tiny model, started here) or "--target HOST:PORT": the end-to-end
# half, generate from the files against generate from their text extracted beforehand.
bench-ingest: setup
	PYTHONPATH=bench $(PY) -m synthqa_bench.ingest_bench --model "$(MODEL)" $(BENCH_ARGS)

## bench-ray: records/s and client CPU per 1,000 records, the CLI against Ray, 1 and 2 replicas
# Starts the tiny model's replicas itself (about 25 minutes here); BENCH_ARGS="--target A,B"
# uses replicas already running (started with --no-cache). Needs the ray extra.
bench-ray: setup
	PYTHONPATH=bench $(PY) -m synthqa_bench.ray_bench --model "$(MODEL)" $(BENCH_ARGS)

## bench-record: the engine's outputs per feature, for the replay engine; bench/replay/
# One server with every engine output recorded, the quick workload through it once per feature
# (qa, cot, custom, evidence, judge, dedup): a few minutes on the tiny model. Serve a file with
# `PYTHONPATH=bench $(PY) -m synthqa_bench.replay_server --recording FILE --model MODEL ...`.
bench-record: setup
	PYTHONPATH=bench $(PY) -m synthqa_bench.record_replay --model "$(MODEL)" $(BENCH_ARGS)

LINTED := server client/src/synthqa/client client/src/synthqa/contract tests scripts bench

## test: lint, then the whole suite against a real server on the tiny model
test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

## test-unit: the logic tests alone (every test not marked e2e): no lint, no vLLM engine
test-unit: setup
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

## lint: ruff on everything, mypy on the server and (strictly) the client
lint: setup
	$(PY) -m ruff check $(LINTED)
	$(PY) -m mypy

## protos: regenerate the committed Python stubs from protos/
protos: $(STAMP)
	PATH="$(VENV)/bin:$$PATH" $(PY) -m grpc_tools.protoc -I protos --python_out=client/src \
		--mypy_out=client/src --grpc_python_out=client/src --mypy_grpc_out=client/src \
		protos/synthqa/v1/synthqa.proto

## clean: remove .venv, .cache, out and the test caches
clean:
	rm -rf $(VENV) .cache out .pytest_cache .hypothesis

FUZZ_STREAMS ?= 5000
SOAK_SECONDS ?= 300

## fuzz: the stateful fuzzer at scale: FUZZ_STREAMS hostile streams (default 5000) on one server
# The session server on the tiny model (`make test` runs 150 streams); prints the streams, their
# statuses and the server's RSS.
fuzz: setup
	SYNTHQA_FUZZ_STREAMS=$(FUZZ_STREAMS) $(PY) -m pytest tests/e2e/test_fuzz.py \
		-k test_hostile_streams_at_scale -s $(PYTEST_ARGS)

## soak: 32 streams with random cancellations for SOAK_SECONDS (default 300), out/soak-*.json
# On a server of its own; every pair exactly once; RSS every second; writes
# out/soak-<timestamp>.json.
soak: setup
	$(PY) -m tests.e2e.test_soak --seconds $(SOAK_SECONDS) $(SOAK_ARGS)
