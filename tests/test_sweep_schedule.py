"""The sweep's scheduling (bench.sweep.Sweep._start_runs) on fake runs, claims and an executor
that only counts: which runs start, in which tasks, and never more tasks than the executor's
slots. Pure and fast: no data, no training."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from bench import sweep
from bench.plan import RunSpec


class _Claim:
    def __init__(self, other: bool = False):
        self.other = other  # held by another command

    def acquire(self) -> bool:
        return not self.other

    def release(self) -> None:
        pass

    def holder(self) -> int:
        return 1


class _Dense:
    def __init__(self, seed: int, ready: bool):
        self.seed, self.weights = seed, ("weights" if ready else None)


class _Slots:
    def __init__(self, slots: int):
        self.slots = slots


class _Bar:
    def update(self) -> None:
        pass


class _Scheduled(sweep.Sweep):
    """A Sweep with only what _start_runs reads; a task is submitted by noting its runs."""

    def __init__(self, queue: list[sweep.Run], slots: int, fuse: int, ready: dict[int, bool], busy: int = 0):
        self.queue, self.executor, self.fuse, self.deadline = queue, _Slots(slots), fuse, None
        self.dense = {seed: _Dense(seed, r) for seed, r in ready.items()}
        self.fusion_key = lambda spec: (spec.method.lower(), spec.method)  # "A" and "a": one class
        self.log, self.bar, self._kinds = (lambda line: None), _Bar(), {}
        self._tickets = itertools.count()
        self.in_flight = {next(self._tickets): ["another task"] for _ in range(busy)}
        self.tasks: list[list[sweep.Run]] = []

    def _submit(self, group: list[sweep.Run]) -> None:
        self.in_flight[next(self._tickets)] = group
        self.tasks.append(group)


def _run(i: int, method: str, seed: int, alone: bool = False, other: bool = False) -> sweep.Run:
    r = sweep.Run(RunSpec(method, {"i": i}, seed), {}, "digest", Path(f"/runs/{i}.json"), _Claim(other), label=str(i))
    r.alone = alone
    return r


@pytest.fixture(autouse=True)
def _no_records(monkeypatch):
    monkeypatch.setattr(sweep, "record_of", lambda path, config, problems=None: None)


def test_a_run_to_run_alone_waits_for_a_slot_that_an_open_fused_group_holds():
    """One slot, --fuse 2: the first run opens a group; a run of a lost fused task, to run alone,
    found the slot free (the group not yet submitted) and took it, and then the group too: two
    tasks on one slot. It now waits."""
    a, lone = _run(0, "magnitude", 0), _run(1, "random", 0, alone=True)
    s = _Scheduled([a, lone], slots=1, fuse=2, ready={0: True})
    s._start_runs({})
    assert s.tasks == [[a]] and s.queue == [lone]


def test_a_fused_task_takes_one_kind_across_ready_seeds_in_plan_order():
    runs = [_run(0, "A", 0), _run(1, "B", 0), _run(2, "A", 1), _run(3, "B", 1), _run(4, "A", 2)]
    s = _Scheduled(list(runs), slots=1, fuse=3, ready={0: True, 1: True, 2: False})
    s._start_runs({})
    assert s.tasks == [[runs[0], runs[2]]]  # seed 2's dense model is not ready; B waits for the slot
    assert s.queue == [runs[1], runs[3], runs[4]]


def test_a_fused_task_takes_its_methods_runs_first_then_tops_up_with_its_class():
    """Two methods of one class ("A", "a": magnitude and random on ResNet-20 fuse): a group of 4
    opened by A takes A's runs at every ready seed first, then fills with a's in queue order; a
    run of another class waits for a slot of its own."""
    runs = [_run(0, "A", 0), _run(1, "a", 0), _run(2, "B", 0), _run(3, "A", 1), _run(4, "a", 1), _run(5, "A", 2)]
    s = _Scheduled(list(runs), slots=1, fuse=4, ready={0: True, 1: True, 2: True})
    s._start_runs({})
    assert s.tasks == [[runs[0], runs[3], runs[5], runs[1]]] and s.queue == [runs[2], runs[4]]
    s = _Scheduled(list(runs), slots=2, fuse=2, ready={0: True, 1: True, 2: True})
    s._start_runs({})
    assert s.tasks == [[runs[0], runs[3]], [runs[2]]]  # a full group of A's; B, next in the queue, opens the other
    assert s.queue == [runs[1], runs[4], runs[5]]


def test_scheduling_never_starts_more_tasks_than_slots_nor_leaves_a_slot_idle_with_a_run_ready():
    rng = random.Random(0)
    for _ in range(3000):
        slots, fuse, seeds = rng.randint(1, 4), rng.randint(1, 5), rng.randint(1, 3)
        ready = {seed: rng.random() < 0.7 for seed in range(seeds)}
        queue = [_run(i, rng.choice("ABCab"), rng.randrange(seeds), alone=rng.random() < 0.2,
                      other=rng.random() < 0.15) for i in range(rng.randint(0, 12))]
        busy = rng.randint(0, slots)
        s = _Scheduled(list(queue), slots, fuse, ready, busy)
        s._start_runs({})
        assert len(s.in_flight) <= max(slots, busy)
        for task in s.tasks:
            assert 1 <= len(task) <= fuse
            assert len(task) == 1 or (len({r.spec.method.lower() for r in task}) == 1 and not any(r.alone for r in task))
            methods = [r.spec.method for r in task]  # the opener's method's runs first, then its class's
            assert methods == sorted(methods, key=lambda m: m != methods[0])
        if len(s.in_flight) < slots:  # a free slot: every run left waits for its dense model or another command
            assert all(not ready[r.spec.seed] or r.claim.other for r in s.queue)
        started = [r for task in s.tasks for r in task]
        assert sorted(r.label for r in started + s.queue) == sorted(r.label for r in queue)


def _clocked(stage: dict[int, float], queue: list[sweep.Run], seconds: dict[str, float], slots: int,
             fuse: int) -> float:
    """The wall time of `queue` as Sweep._start_runs schedules it on a clock: the dense models
    in `stage` start first, as slots free (Sweep._start_dense), each task takes the sum of its
    runs' seconds, and every task ending at a moment ends before the next are started."""
    seeds = {r.spec.seed for r in queue}
    s = _Scheduled(list(queue), slots, fuse, {seed: seed not in stage for seed in seeds})
    ends: dict[int, tuple[float, int | None]] = {}  # ticket -> (when it ends, the seed whose dense model it trains)
    now, pending = 0.0, list(stage)
    while s.queue or s.in_flight:
        while pending and len(s.in_flight) < slots:
            ticket = next(s._tickets)
            s.in_flight[ticket], ends[ticket] = pending[0], (now + stage[pending[0]], pending[0])
            pending.pop(0)
        s._start_runs({})
        for ticket, task in s.in_flight.items():
            if ticket not in ends:
                ends[ticket] = (now + sum(seconds[r.label] for r in task), None)
        now = min(ends[t][0] for t in s.in_flight)
        for ticket in [t for t in s.in_flight if ends[t][0] == now]:
            del s.in_flight[ticket]
            if ends[ticket][1] is not None:
                s.dense[ends[ticket][1]].weights = "weights"
    return now


def test_the_dry_runs_wall_time_is_the_sweeps_own_schedule():
    """`bench run --dry-run --jobs N --fuse K` prices the plan with sweep_seconds, a model of the
    schedule: on random plans it ends when the sweep's own scheduler, driven on a clock, does."""
    rng = random.Random(1)
    for _ in range(1500):
        slots, fuse, seeds = rng.randint(1, 4), rng.randint(1, 5), rng.randint(1, 3)
        queue = [_run(i, rng.choice("ABCab"), rng.randrange(seeds)) for i in range(rng.randint(1, 12))]
        seconds = {r.label: float(rng.randint(1, 30)) for r in queue}
        stage = {seed: float(rng.randint(1, 60)) for seed in sorted({r.spec.seed for r in queue}) if rng.random() < 0.6}
        kinds = [(r.spec.seed, seconds[r.label], (r.spec.method.lower(), r.spec.method)) for r in queue]
        assert sweep.sweep_seconds(stage, kinds, slots, fuse) == _clocked(stage, queue, seconds, slots, fuse)
    # one slot runs everything one after another; more slots, no fusion: the longest chain or the share
    assert sweep.sweep_seconds({0: 10.0}, [(0, 5.0, ("a", "A"))] * 3, 1, 1) == 25.0
    assert sweep.sweep_seconds({0: 10.0, 1: 10.0}, [(0, 5.0, ("a", "A")), (1, 5.0, ("a", "A"))], 2, 1) == 15.0
