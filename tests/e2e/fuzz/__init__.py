"""The stateful fuzzer of tests/e2e/test_fuzz.py, by job:

- `wire`: the messages a stream sends, described compactly and encoded by hand (invalid UTF-8,
  garbage and unknown fields reach the server as sent);
- `strategies`: hypothesis strategies for those messages and the ways a stream ends, and the
  hand-picked edge cases;
- `model`: the protocol restated, what the server must answer: the status a stream ends with,
  the documents and chunks it takes, and the events it may send;
- `harness`: one stream run against the live server and verified against the model, the
  server's limits, counters and the ledger of characters it holds;
- `machine`: the hypothesis state machine that drives streams, and its rounds.

The server's memory is read with bench/synthqa_bench/process_tree.py, the sampler the benchmark
and the soak share. Settings from the environment: SYNTHQA_FUZZ_STREAMS, SYNTHQA_FUZZ_SEED and
SYNTHQA_FUZZ_RSS_BOUND_MIB (test_fuzz.py), SYNTHQA_FUZZ_VERBOSE (harness), SYNTHQA_FUZZ_SHRINK
(machine).
"""
