"""Explanations on disk: ``.npy`` files that grow batch by batch, valid at every moment.

On-disk layout of an ``out_dir`` (read it back with :func:`load_explanations`):

* one standard ``.npy`` file per field: ``heatmaps.npy [N, *input spatial] float32``,
  ``raw.npy [N, *layer spatial] float32``, ``targets.npy [N] int64``, ``scores.npy [N] float32``,
  ``weights.npy [N, K] float32`` (methods with channel weights) and ``extra.<name>.npy`` for a
  method's further outputs;
* ``explanation.json``: method, layer, sample count, the files, and whether the run completed.

Each ``.npy`` file grows by appending every batch's rows after a header of fixed size; the header
(which holds the row count) is rewritten after each batch. So the files are valid NumPy arrays of
the samples finished so far at every moment: an interrupted run leaves readable partial results,
and ``np.load(path, mmap_mode="r")`` maps them without reading them into memory.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from typing import Any

import numpy as np

from tf_gradcam.explanation import Explanation

__all__ = ["Sink", "load_explanations"]

META_FILE = "explanation.json"
FORMAT = "tf_gradcam.explain_dataset/1"


def load_explanations(out_dir: str | os.PathLike, mmap_mode: Any = "r") -> Explanation:
    """Read the results :func:`explain_dataset` wrote to ``out_dir`` as one Explanation.

    Args:
        out_dir: the directory given to :func:`explain_dataset`.
        mmap_mode: ``"r"`` (default) maps the arrays read-only without loading them into memory;
            ``None`` reads them; any ``np.load`` mode.

    Returns:
        An :class:`~tf_gradcam.Explanation`. For an interrupted run it holds the samples of the
        batches that finished (with a warning).
    """
    meta = _read_meta(out_dir)
    if meta is None:
        raise FileNotFoundError(
            f"No {META_FILE} in {os.fspath(out_dir)!r}: not an explain_dataset output."
        )
    arrays = {
        name: np.load(os.path.join(out_dir, file), mmap_mode=mmap_mode)
        for name, file in meta["files"].items()
    }
    n = {len(a) for a in arrays.values()}
    if len(n) != 1:
        raise ValueError(
            f"The files in {os.fspath(out_dir)!r} hold different sample counts {sorted(n)}: "
            "corrupted."
        )
    if not meta.get("complete", False):
        warnings.warn(
            f"The run that wrote {os.fspath(out_dir)!r} did not finish: loading the "
            f"{n.pop()} samples written.",
            stacklevel=2,
        )
    return _explanation(arrays, meta)


class Sink:
    """Collects per-batch results in memory and/or appends them to ``.npy`` files."""

    def __init__(self, out_dir, keep: bool, overwrite: bool, meta: dict) -> None:
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.keep = keep
        self.meta = dict(meta)
        self.n = 0
        self.parts: dict[str, list] = {}
        self.files: dict[str, _NpyAppender] = {}
        self.row_shapes: dict[str, tuple] = {}
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
            old = _read_meta(self.out_dir)
            if old is not None:
                if not overwrite:
                    raise FileExistsError(
                        f"{self.out_dir!r} already holds explain_dataset results; pass "
                        "overwrite=True to replace them or choose another out_dir."
                    )
                for file in list(old.get("files", {}).values()) + [META_FILE]:
                    path = os.path.join(self.out_dir, file)
                    if os.path.exists(path):
                        os.remove(path)

    @staticmethod
    def _field(key: str) -> str:
        return key if key in ("heatmaps", "raw", "targets", "scores", "weights") else f"extra.{key}"

    def add(self, out: dict) -> None:
        rows = {}
        for key, value in out.items():
            dtype = np.int64 if key == "targets" else np.float32
            rows[self._field(key)] = np.asarray(value).astype(dtype, copy=False)
        for field, arr in rows.items():
            expected = self.row_shapes.setdefault(field, arr.shape[1:])
            if arr.shape[1:] != expected:
                raise ValueError(
                    f"Batch results of different shapes ({field}: {expected} then "
                    f"{arr.shape[1:]}): explain_dataset needs inputs of one size; resize them in "
                    "the dataset."
                )
        if self.out_dir is not None:
            if not self.files:
                for field, arr in rows.items():
                    path = os.path.join(self.out_dir, f"{field}.npy")
                    self.files[field] = _NpyAppender(path, arr.dtype, arr.shape[1:])
                self._write_meta(complete=False)
            for field, arr in rows.items():
                self.files[field].append(arr)
            for appender in self.files.values():  # headers last: the files are always valid
                appender.commit()
        if self.keep:
            for field, arr in rows.items():
                self.parts.setdefault(field, []).append(arr)
        self.n += len(rows["targets"])
        if self.out_dir is not None:
            self._write_meta(complete=False)

    def _write_meta(self, complete: bool) -> None:
        meta = {
            "format": FORMAT,
            **self.meta,
            "n": self.n,
            "complete": complete,
            "files": {field: f"{field}.npy" for field in self.files},
        }
        assert self.out_dir is not None
        tmp = os.path.join(self.out_dir, META_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(meta, f, indent=1)
        os.replace(tmp, os.path.join(self.out_dir, META_FILE))

    def close(self, complete: bool) -> None:
        for appender in self.files.values():
            appender.close()
        if self.out_dir is not None and self.files:
            self._write_meta(complete=complete)

    def result(self) -> Explanation:
        if not self.keep:
            assert self.out_dir is not None  # results kept nowhere else
            return load_explanations(self.out_dir)
        return _explanation({f: np.concatenate(p) for f, p in self.parts.items()}, self.meta)


def _explanation(arrays: dict, meta: dict) -> Explanation:
    """Files are named after the Explanation's fields; a method's extras as ``extra.<name>``."""
    fields = {k[len("extra."):] if k.startswith("extra.") else k: v for k, v in arrays.items()}
    return Explanation.from_arrays(fields, method=meta.get("method", ""),
                                   layer=meta.get("layer", ""))


def _read_meta(out_dir) -> dict | None:
    path = os.path.join(os.fspath(out_dir), META_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path!r} was not written by tf_gradcam.explain_dataset "
            f"(format {meta.get('format')!r})."
        )
    return meta


class _NpyAppender:
    """A ``.npy`` file that grows by whole rows; its header is rewritten in place on commit.

    The header is padded to a fixed size large enough for any row count, so rewriting it never
    moves the data (which starts at a 64-byte aligned offset, as NumPy's own files do).
    """

    def __init__(self, path: str, dtype: np.dtype, row_shape: tuple) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.n = 0
        widest = len(self._dict_text(10**19))
        self.header_size = -(-(10 + widest + 1) // 64) * 64
        self.file = open(path, "w+b")
        self.commit()

    def _dict_text(self, n: int) -> str:
        shape = (int(n),) + self.row_shape
        descr = np.lib.format.dtype_to_descr(self.dtype)
        return f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"

    def append(self, rows: np.ndarray) -> None:
        self.file.seek(0, os.SEEK_END)
        self.file.write(np.ascontiguousarray(rows, self.dtype).tobytes())
        self.n += len(rows)

    def commit(self) -> None:
        text = self._dict_text(self.n)
        body = text + " " * (self.header_size - 10 - len(text) - 1) + "\n"
        self.file.seek(0)
        self.file.write(
            b"\x93NUMPY\x01\x00" + struct.pack("<H", self.header_size - 10) + body.encode("latin1")
        )
        self.file.flush()
        self.file.seek(0, os.SEEK_END)

    def close(self) -> None:
        if not self.file.closed:
            self.commit()
            self.file.close()
