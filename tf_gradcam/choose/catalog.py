"""Every tensor of a model's graph that can be named, with its path and static shape.

:func:`catalog` runs :func:`tf_gradcam.engine.graph.trace` once and lists one entry per output
of every call of every operation (layers and bare ops such as ``add_17``), nested models'
contents included, in execution order. Paths are what users type and what explainers report:

* ``"backbone/conv5_block3_out"``: an op inside the nested model ``backbone``;
* ``"branch@1"``: the second call (construction order) of a layer or model called twice;
* ``"split[1]"``: the second output of an op with several;
* ``"input_of(avg_pool)"``: the tensor an op reads (see :mod:`tf_gradcam.choose.tensors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tf_gradcam.engine import graph


@dataclass(frozen=True)
class Entry:
    """One output of one call of an operation."""

    op: Any
    path: str
    shape: tuple
    call: graph.Call
    index: int | None  # which output, for an op with several
    shared: bool  # the op (within its model's call) runs more than once


class Catalog:
    """The traced dataflow of a model and its nameable tensors (see the module docstring)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls, self.outputs, self.roots = graph.trace(model)
        self.producers: dict[int, graph.Call] = {}
        self.consumers: dict[int, list[graph.Call]] = {}
        for call in self.calls:
            for v in call.outputs:
                # A nested model returns its inner op's value: keep the innermost producer.
                self.producers.setdefault(id(v), call)
            if not graph.is_graph_model(call.op):
                for v in call.inputs:
                    self.consumers.setdefault(id(v), []).append(call)
        runs: dict[tuple, set] = {}
        for call in self.calls:
            runs.setdefault((id(call.op), call.parent_calls), set()).add(call.index)
        self._runs = runs
        self.entries: list[Entry] = []
        for call in self.calls:
            shared = len(runs[(id(call.op), call.parent_calls)]) > 1
            base = self.prefix(call) + call.op.name + (f"@{call.index}" if shared else "")
            many = len(call.outputs) > 1
            for j, value in enumerate(call.outputs):
                self.entries.append(Entry(call.op, base + (f"[{j}]" if many else ""),
                                          value.shape, call, j if many else None, shared))

    def prefix(self, call: graph.Call) -> str:
        """The nested models' part of a call's path: ``"outer/inner@1/"``."""
        parts = []
        for depth, (parent, index) in enumerate(zip(call.parents, call.parent_calls)):
            indices = self._runs.get((id(parent), call.parent_calls[:depth]), set())
            parts.append(parent.name + (f"@{index}" if len(indices) > 1 else ""))
        return "".join(p + "/" for p in parts)

    def order_of(self, call: graph.Call) -> int:
        """Which invocation of ``call.op`` in one run of the model ``call`` is (0-based, in
        execution order): what the engine counts to capture at the right call."""
        same = [c for c in self.calls if c.op is call.op]
        return next(i for i, c in enumerate(same) if c is call)

    def runs_of(self, op: Any) -> int:
        return sum(1 for c in self.calls if c.op is op)

    def depends_on(self, roots: list) -> set[int]:
        """Ids of the values computed from any of ``roots`` (model input values)."""
        found = {id(r) for r in roots}
        for call in self.calls:
            if any(id(v) in found for v in call.inputs):
                found.update(id(v) for v in call.outputs)
        return found

    def ancestors(self, value: Any) -> set[int]:
        """Ids of the values ``value`` is computed from (itself included)."""
        found, stack = set(), [value]
        while stack:
            v = stack.pop()
            if id(v) in found:
                continue
            found.add(id(v))
            call = self.producers.get(id(v))
            if call is not None:
                stack.extend(call.inputs)
        return found

    def reaches_output(self, value: Any) -> bool:
        """Whether the model's outputs are computed from ``value``."""
        downstream = {id(value)}
        for call in self.calls:
            if any(id(v) in downstream for v in call.inputs):
                downstream.update(id(v) for v in call.outputs)
        return any(id(v) in downstream for v in self.outputs)
