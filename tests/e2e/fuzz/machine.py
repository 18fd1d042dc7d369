"""The hypothesis state machine that drives the fuzz: each rule runs a stream (Generate,
GenerateDocument, one in the background, ChunkDocument); after every step the server is
SERVING, after every example it is idle; `run_rounds` runs it until enough streams ran."""

from __future__ import annotations

import math
import os
from typing import ClassVar

import grpc
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from .harness import Fuzz, Running
from .model import EXHAUSTED, INVALID, OK
from .strategies import (
    any_options,
    document_requests,
    ends,
    hostile_texts,
    scripts,
    usable_texts,
)
from .wire import (
    GENERATE,
    GENERATE_DOCUMENT,
    NORMAL_DEADLINE,
    DocumentRequest,
    End,
    Message,
    Opts,
    Text,
    length_delimited,
    utf8,
)

STEPS = 10
# Shrinking replays a failure against the live server hundreds of times: on demand only (the
# failing example is printed step by step either way).
PHASES = [Phase.generate, Phase.shrink] if os.environ.get("SYNTHQA_FUZZ_SHRINK") else [
    Phase.generate]
# Streams running in the background at once, at most.
MAX_BACKGROUND = 4


class FuzzMachine(RuleBasedStateMachine):
    fuzz: ClassVar[Fuzz]
    background = Bundle("background")

    def __init__(self) -> None:
        super().__init__()
        self.running: list[Running] = []

    @rule(script=scripts(), end=ends())
    def generate(self, script: list[Message], end: End) -> None:
        running = self.fuzz.prepare("Generate", GENERATE, script, end)
        self.fuzz.run(running)
        self.fuzz.verify(running)

    @rule(request=document_requests(), end=ends(streaming=False))
    def generate_document(self, request: DocumentRequest, end: End) -> None:
        running = self.fuzz.prepare("GenerateDocument", GENERATE_DOCUMENT, request, end)
        self.fuzz.run(running)
        self.fuzz.verify(running)

    @precondition(lambda self: len(self.running) < MAX_BACKGROUND)
    @rule(target=background, script=scripts(huge=False), end=ends())
    def start_background(self, script: list[Message], end: End) -> Running:
        running = self.fuzz.start(self.fuzz.prepare("Generate (background)", GENERATE, script,
                                                    end))
        self.running.append(running)
        return running

    @rule(running=consumes(background))
    def finish_background(self, running: Running) -> None:
        self.running.remove(running)
        self.fuzz.finish(running)

    @rule(text=st.one_of(usable_texts(), hostile_texts(True)), options=any_options())
    def chunk_document(self, text: Text, options: Opts) -> None:
        body = utf8(text.value(self.fuzz.limits))
        request = (length_delimited(1, body) if body else b"") + length_delimited(
            2, options.payload())
        try:
            self.fuzz.chunk_raw(request, timeout=NORMAL_DEADLINE)
            code = OK
        except grpc.RpcError as error:
            code = error.code()
            assert code in (INVALID, EXHAUSTED), (code, error.details())
            assert error.details() and "Traceback" not in error.details()
        self.fuzz.chunk_calls[code.name] += 1

    @invariant()
    def serving(self) -> None:
        self.fuzz.check_serving()

    def teardown(self) -> None:
        failures = []
        for running in self.running:
            try:
                self.fuzz.finish(running)
            except BaseException as error:
                failures.append(error)
        self.running.clear()
        if failures:
            raise failures[0]
        self.fuzz.wait_idle()


def run_rounds(fuzz: Fuzz, until: int, first_seed: int) -> None:
    """State-machine runs, each reproducible from its seed, until `until` streams ran. A run
    starts with hypothesis's simplest example (ten ChunkDocument calls), so each asks for
    enough examples to reach the count in one go, with a margin."""
    FuzzMachine.fuzz = fuzz
    number = 0
    while fuzz.streams < until:
        examples = max(3, math.ceil((until - fuzz.streams) / (STEPS * 0.6)) + 1)
        run_state_machine_as_test(seed(first_seed + number)(FuzzMachine), settings=settings(
            max_examples=examples, stateful_step_count=STEPS, deadline=None, database=None,
            derandomize=False, phases=PHASES, print_blob=False,
            report_multiple_bugs=False, suppress_health_check=list(HealthCheck)))
        number += 1
