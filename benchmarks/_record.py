"""The benchmarks' raw record: every figure goes to ``benchmarks/results/<name>.json``.

Each benchmark script makes one :class:`Record`, adds rows (plain dicts of what it measured,
ratios first) and saves it; ``benchmarks/report.py`` renders ``docs/benchmarks.md`` and the
README's speed figures from these files, so nothing in the docs is typed by hand. A record
holds the machine, the versions and the date it was measured on.
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


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Record:
    """Rows of one benchmark run, saved as ``results/<name>.json``."""

    def __init__(self, name: str, **setup: Any) -> None:
        self.name = name
        self.data = {"benchmark": name, "environment": environment(), "setup": setup, "rows": []}

    def add(self, **row: Any) -> None:
        self.data["rows"].append(row)
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()), flush=True)

    def save(self) -> str:
        os.makedirs(RESULTS, exist_ok=True)
        path = os.path.join(RESULTS, f"{self.name}.json")
        with open(path, "w") as f:
            json.dump(self.data, f, indent=1)
        return path
