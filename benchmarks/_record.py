"""The benchmarks' raw record: every figure goes to ``benchmarks/results/<name>.json``.

Each benchmark script makes one :class:`Record`, adds rows (plain dicts of what it measured,
ratios first) and saves it; ``benchmarks/report.py`` renders ``docs/benchmarks.md`` and the
README's speed figures from these files, so nothing in the docs is typed by hand. A record
holds the machine, the versions, the date it was measured on, the machine's load average when it
started and ended (other jobs on a shared machine make the seconds noisy; the ratios less so) and
how long the run took.

A ``quick=True`` record (the scripts' ``--quick`` smoke-test mode: tiny sizes, one or two
repeats) is saved as ``results/<name>.quick.json``: ignored by git and by the report, it never
overwrites a real record.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from typing import Any, Callable

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def environment() -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    import tf_gradcam

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tf_gradcam": tf_gradcam.__version__, "tensorflow": tf.__version__,
        "keras": keras.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "cpu_cores": os.cpu_count(),
        "devices": [d.device_type for d in tf.config.list_logical_devices()],
    }


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``None`` where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_times(fns: dict[str, Callable[[], Any]], repeats: int | dict[str, int]
                 ) -> dict[str, float]:
    """The median wall time of each of ``fns`` (seconds), the calls interleaved: each round
    calls every function once, in order, so a burst of load from other jobs hits them all alike
    and their ratios stay fair. ``repeats`` may give a count per name (e.g. 1 for a call of a
    minute); a name stops being called once it has its count."""
    counts = {k: repeats if isinstance(repeats, int) else repeats.get(k, 1) for k in fns}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for round_ in range(max(counts.values(), default=0)):
        for name, fn in fns.items():
            if round_ < counts[name]:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


class Record:
    """Rows of one benchmark run, saved as ``results/<name>.json``."""

    def __init__(self, name: str, *, quick: bool = False, **setup: Any) -> None:
        self.name = name
        self.quick = bool(quick)
        if self.quick:
            setup = {"quick": True, **setup}
        setup["machine_load"] = {"start": load_average()}
        self.data = {"benchmark": name, "environment": environment(), "setup": setup, "rows": []}
        self._start = time.perf_counter()
        self._loads: list[list[float] | None] = []  # sampled at every row

    def add(self, **row: Any) -> None:
        self.data["rows"].append(row)
        self._loads.append(load_average())
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()), flush=True)

    def save(self) -> str:
        """Write ``results/<name>.json`` (quick: ``<name>.quick.json``); returns the path."""
        load = self.data["setup"]["machine_load"]
        load["end"] = load_average()
        ones = [v[0] for v in [load["start"], *self._loads, load["end"]] if v]
        load["max_1min"] = max(ones) if ones else None
        self.data["seconds"] = round(time.perf_counter() - self._start, 1)
        os.makedirs(RESULTS, exist_ok=True)
        suffix = ".quick.json" if self.quick else ".json"
        path = os.path.join(RESULTS, f"{self.name}{suffix}")
        with open(path, "w") as f:
            json.dump(self.data, f, indent=1)
        return path
