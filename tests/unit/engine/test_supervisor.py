"""The supervisor's restart logic on stand-in engines that die on command. The real engine's
death and restart are tested end to end (tests/e2e/test_lifecycle.py)."""

from __future__ import annotations

import asyncio

import pytest

from synthqa.server.engine.supervisor import EngineGaveUp, EngineSupervisor, RestartPolicy
from synthqa.server.engine.types import EngineDead, EngineDelta, SamplingRequest
from tests.unit.helpers import until

REQUEST = SamplingRequest(max_tokens=8, temperature=1.0, top_p=1.0, seed=None, json_schema={})


class MortalEngine:
    """Streams deltas until killed; then every request in it, and every later one, fails."""

    model_name = "mortal"
    max_model_len = 64
    tokenizer = None

    def __init__(self, number: int) -> None:
        self.number = number
        self.dead = asyncio.Event()
        self.shut_down = False
        self.served: list[str] = []

    @property
    def unfinished_requests(self) -> int:
        return 0

    async def generate(self, prompt_ids, request, request_id, trace_headers=None):
        self.served.append(request_id)
        for _ in range(1000):
            if self.dead.is_set():
                raise EngineDead("killed")
            yield EngineDelta("x", 1, len(prompt_ids), False, None)
            await asyncio.sleep(0.01)

    async def abort(self, request_ids) -> None:
        pass

    async def check_health(self) -> None:
        if self.dead.is_set():
            raise EngineDead("killed")

    async def shutdown(self) -> None:
        self.shut_down = True


class Factory:
    def __init__(self, fail_starts: int = 0) -> None:
        self.engines: list[MortalEngine] = []
        self.fail_starts = fail_starts

    def __call__(self) -> MortalEngine:
        if self.engines and self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError("no memory for a new engine")
        self.engines.append(MortalEngine(len(self.engines)))
        return self.engines[-1]


async def supervised(factory: Factory, policy: RestartPolicy):
    supervisor = EngineSupervisor(factory, policy, health_check_seconds=0.01)
    await supervisor.start()
    transitions: list[str] = []

    async def down() -> None:
        transitions.append("down")

    async def up() -> None:
        transitions.append("up")

    task = asyncio.create_task(supervisor.supervise(down, up))
    return supervisor, transitions, task


async def first_delta(supervisor: EngineSupervisor, request_id: str) -> list[EngineDelta]:
    stream = supervisor.generate([1, 2], REQUEST, request_id)
    try:
        return [await anext(stream)]
    finally:
        await stream.aclose()


async def killed_under_a_request(supervisor: EngineSupervisor, engine: MortalEngine) -> None:
    """Kill the engine while a request streams from it: that request fails."""
    stream = supervisor.generate([1], REQUEST, "in-flight")
    await anext(stream)
    engine.dead.set()
    with pytest.raises(EngineDead):
        async for _ in stream:
            pass


async def test_a_dead_engine_fails_its_requests_and_is_replaced() -> None:
    factory = Factory()
    policy = RestartPolicy(first_backoff_seconds=0)
    supervisor, transitions, task = await supervised(factory, policy)
    await killed_under_a_request(supervisor, factory.engines[0])
    # A request made after the death waits for the new engine instead of failing.
    assert len(await asyncio.wait_for(first_delta(supervisor, "later"), 5)) == 1
    assert len(factory.engines) == 2
    assert factory.engines[0].shut_down, "the dead engine's processes are cleaned up"
    assert factory.engines[1].served == ["later"]
    assert transitions == ["down", "up"]
    assert supervisor.restarts == 1
    task.cancel()


async def test_health_check_finds_a_death_no_request_saw() -> None:
    factory = Factory()
    supervisor, transitions, task = await supervised(factory, RestartPolicy())
    factory.engines[0].dead.set()
    await asyncio.sleep(0.05)  # no request runs: only the health check can notice
    await asyncio.wait_for(first_delta(supervisor, "after"), 5)
    assert transitions == ["down", "up"] and len(factory.engines) == 2
    task.cancel()


async def test_too_many_restarts_in_the_window_gives_up_and_fails_waiting_requests() -> None:
    factory = Factory()
    policy = RestartPolicy(max_restarts=1, window_seconds=60, first_backoff_seconds=0)
    supervisor, transitions, task = await supervised(factory, policy)
    factory.engines[0].dead.set()
    await asyncio.sleep(0.05)  # the health check notices
    await asyncio.wait_for(first_delta(supervisor, "on the second engine"), 5)
    factory.engines[1].dead.set()
    with pytest.raises(EngineGaveUp, match="1 restart"):
        await asyncio.wait_for(task, 5)
    assert transitions == ["down", "up", "down"]
    assert len(factory.engines) == 2, "no third engine"
    with pytest.raises(EngineDead):
        await first_delta(supervisor, "too late")


async def test_restarts_outside_the_window_do_not_count() -> None:
    now = [0.0]
    factory = Factory()
    supervisor = EngineSupervisor(factory, RestartPolicy(max_restarts=1, window_seconds=10),
                                  health_check_seconds=0.01, clock=lambda: now[0])
    await supervisor.start()

    async def nothing() -> None:
        pass

    task = asyncio.create_task(supervisor.supervise(nothing, nothing))
    for death in range(3):
        factory.engines[-1].dead.set()
        # The count goes up once the new engine's start (in a thread) is back on the loop.
        await until(lambda restarts=death + 1: supervisor.restarts == restarts)
        assert len(factory.engines) == death + 2
        now[0] += 11
    assert supervisor.restarts == 3 and not task.done()
    task.cancel()


async def test_a_failed_start_is_retried_and_counts_against_the_window() -> None:
    factory = Factory(fail_starts=1)
    policy = RestartPolicy(max_restarts=2, first_backoff_seconds=0.01)
    supervisor, transitions, task = await supervised(factory, policy)
    factory.engines[0].dead.set()
    await asyncio.sleep(0.05)
    await asyncio.wait_for(first_delta(supervisor, "after"), 5)
    assert supervisor.restarts == 1 and len(factory.engines) == 2
    task.cancel()


async def test_a_death_after_supervision_stopped_fails_requests_at_once() -> None:
    """The server is shutting down (it cancels supervise() before draining): an engine that
    dies then is not replaced, so the drained calls' requests must fail, not wait."""
    factory = Factory()
    supervisor, transitions, task = await supervised(factory, RestartPolicy())
    await asyncio.sleep(0.05)  # supervising
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await killed_under_a_request(supervisor, factory.engines[0])
    with pytest.raises(EngineGaveUp):
        await asyncio.wait_for(first_delta(supervisor, "later"), 5)
    assert transitions == [] and len(factory.engines) == 1


async def test_requests_waiting_for_a_restart_fail_when_supervision_stops() -> None:
    """A death noticed just before the shutdown: the requests waiting for the new engine
    fail once supervise() is cancelled, instead of waiting for ever."""
    factory = Factory()
    policy = RestartPolicy(max_restarts=3, first_backoff_seconds=60)
    supervisor, transitions, task = await supervised(factory, policy)
    factory.engines[0].dead.set()
    await until(lambda: supervisor.restarts == 1)
    factory.engines[1].dead.set()
    await until(lambda: transitions == ["down", "up", "down"])  # now in the 60 s backoff
    waiting = asyncio.create_task(first_delta(supervisor, "waiting"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    task.cancel()
    with pytest.raises(EngineGaveUp):
        await asyncio.wait_for(waiting, 5)


def test_backoff_is_immediate_then_doubles_up_to_the_cap() -> None:
    policy = RestartPolicy(first_backoff_seconds=1, max_backoff_seconds=5)
    assert [policy.backoff(n) for n in range(6)] == [0, 1, 2, 4, 5, 5]
