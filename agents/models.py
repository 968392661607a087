"""Several models on one node: the desired state's `model` (the default, named "") and its `models`
(by name; an agent's `model` names one). Every file is fetched and verified when a revision is
applied, and every model is loaded once then (its smoke test), so a revision that cannot run is
refused as a whole. After that a model is loaded when an agent needs it and kept while memory
allows; to make room, the least recently used one is unloaded (`model.unloaded`), and loaded
again on its next use (`model.swap_ms`).

Memory: a model's cost is what loading it added to this process's resident memory (at least its
file size); the budget is EDGEFLEET_AGENT_MODEL_MEMORY_MB, else 75% of the machine's RAM.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents import device
from agents.backends import Backend
from wire import schemas

BUDGET_ENV = "EDGEFLEET_AGENT_MODEL_MEMORY_MB"
DEFAULT = ""  # the name of the desired state's `model`


def memory_budget_mb() -> float:
    value = os.environ.get(BUDGET_ENV, "").strip()
    if value:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{BUDGET_ENV} must be a number of megabytes, not {value!r}") from None
    return device.ram_mb() * 0.75


@dataclass
class Resident:
    backend: Backend
    cost_mb: float
    used_at: float


class ModelPool:
    """The node's models by name, loaded on demand within a memory budget. Not thread-safe: the
    runtime calls it under its request lock (one inference at a time)."""

    def __init__(
        self,
        assignments: dict[str, schemas.ModelAssignment],
        load: Callable[[str, schemas.ModelAssignment], Backend],
        *,
        sizes_mb: dict[str, float] | None = None,
        budget_mb: float | None = None,
        event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None,
        metrics: Callable[[dict[str, float]], None] = lambda values: None,
    ):
        self.assignments = assignments
        self.load = load
        self.sizes_mb = sizes_mb or {}
        self.budget_mb = memory_budget_mb() if budget_mb is None else budget_mb
        self.event, self.metrics = event, metrics
        self.resident: dict[str, Resident] = {}
        # Not unloaded to make room: while a revision is applied, the models it took over from
        # the running one, which may be answering a request with them meanwhile.
        self.pinned: set[str] = set()

    @staticmethod
    def name_in(assignments: dict[str, schemas.ModelAssignment], wanted: str) -> str:
        """The pool's name for an agent's `model`: "" or the default model's name is the default;
        else a key of `models`, or the registry name of one of them. KeyError if none."""
        if wanted in assignments:
            return wanted
        default = assignments.get(DEFAULT)
        if default is not None and default.name == wanted:
            return DEFAULT
        for name, assignment in assignments.items():
            if assignment.name == wanted:
                return name
        raise KeyError(wanted)

    def name_for(self, wanted: str) -> str:
        return self.name_in(self.assignments, wanted)

    def get(self, name: str = DEFAULT) -> Backend:
        """The model's backend, loaded now if it is not resident (unloading the least recently
        used ones first where the budget needs it)."""
        resident = self.resident.get(name)
        if resident is not None and not resident.backend.closed:
            resident.used_at = time.monotonic()
            return resident.backend
        assignment = self.assignments[name]
        self._make_room(name, self.sizes_mb.get(name, 0.0))
        before, _ = device.process_usage()
        started = time.perf_counter()
        backend = self.load(name, assignment)
        loaded_s = time.perf_counter() - started
        after, _ = device.process_usage()
        cost = max(after - before, self.sizes_mb.get(name, 0.0))
        self.resident[name] = Resident(backend, cost, time.monotonic())
        if resident is not None:  # it was unloaded to make room: this is a swap back in
            self.metrics({"model.swap_ms": loaded_s * 1000})
        return backend

    def _make_room(self, name: str, need_mb: float) -> None:
        """Unload the least recently used models until `need_mb` more fits the budget. Pinned
        models count against it but are never unloaded (the budget may be exceeded then)."""
        while True:
            loaded = {n: r for n, r in self.resident.items() if n != name and not r.backend.closed}
            used = sum(r.cost_mb for r in loaded.values())
            victims = {n: r for n, r in loaded.items() if n not in self.pinned}
            if not victims or used + need_mb <= self.budget_mb:
                return
            self.unload(min(victims, key=lambda n: victims[n].used_at), "memory")

    def unload(self, name: str, reason: str) -> None:
        resident = self.resident.get(name)
        if resident is None or resident.backend.closed:
            return
        resident.backend.close()
        # Kept as a closed entry: `get` knows a later load is a swap back in.
        resident.cost_mb = 0.0
        self.event("model.unloaded", {"model": name or "default", "reason": reason})

    def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload the models whose assignment says to after `idle_unload_s` without use (the
        device timer calls this). Returns their names."""
        now = time.monotonic() if now is None else now
        idle = [
            name
            for name, r in self.resident.items()
            if not r.backend.closed
            and self.assignments[name].idle_unload_s
            and now - r.used_at >= self.assignments[name].idle_unload_s
        ]
        for name in idle:
            self.unload(name, "idle")
        return idle

    def adopt(self, old: ModelPool | None) -> None:
        """Take over the old pool's loaded backends whose assignment is unchanged (no reload)."""
        if old is None:
            return
        for name, assignment in self.assignments.items():
            kept = old.resident.get(name)
            previous = old.assignments.get(name)
            unchanged = previous is not None and _loads_alike(previous, assignment)
            if kept is not None and unchanged and not kept.backend.closed:
                self.resident[name] = kept
                self.pinned.add(name)

    def release(self, kept: ModelPool | None) -> None:
        """Close what the pool that replaced this one did not take over."""
        taken = {id(r.backend) for r in kept.resident.values()} if kept else set()
        for resident in self.resident.values():
            if id(resident.backend) not in taken:
                resident.backend.close()

    def report(self) -> dict[str, dict[str, Any]]:
        """Every assigned model for the control plane: its name, digest and whether it is
        loaded now (the node page lists them)."""
        loaded = set(self.loaded())
        return {
            (name or "default"): {
                "name": model.name,
                "digest": schemas.model_digest(model.model_dump()),
                "resident": name in loaded,
            }
            for name, model in sorted(self.assignments.items())
        }

    def loaded(self) -> list[str]:
        return sorted(n for n, r in self.resident.items() if not r.backend.closed)

    def close(self) -> None:
        for resident in self.resident.values():
            resident.backend.close()


# What loading a model depends on: a new revision that changes none of these keeps it loaded
# (its `choice` text, say, may change with the fleet's telemetry).
LOAD_FIELDS = {
    "backend",
    "url",
    "sha256",
    "n_ctx",
    "n_threads",
    "n_gpu_layers",
    "base_url",
    "remote_model",
}


def _loads_alike(a: schemas.ModelAssignment, b: schemas.ModelAssignment) -> bool:
    return a.model_dump(include=LOAD_FIELDS) == b.model_dump(include=LOAD_FIELDS)
