"""``aug_smooth``: test-time augmentation, every copy in the one compiled step.

Each image is explained as ``m`` augmented copies (by default a horizontal flip times intensity
factors 0.9 / 1.0 / 1.1, pytorch-grad-cam's set), all in one batch of ``B * m`` rows; each
copy's map is mapped back (a flipped map flipped back), scaled by its maximum, and the copies
are averaged, then scaled again. The class explained is chosen on the unaugmented copy (rank
targets such as the top class never change between copies), and the scores, targets and channel
weights reported are that copy's.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import tensorflow as tf

from tf_gradcam.engine import resize


@dataclass(frozen=True)
class Augmentations:
    """The copies ``aug_smooth`` explains: every combination of ``flips`` (mirror the last
    spatial axis: left-right for images) and intensity ``factors`` (the input times it). The
    identity (no flip, factor 1) must be among them: the classes are chosen on it."""

    flips: tuple[bool, ...] = (False, True)
    factors: tuple[float, ...] = (0.9, 1.0, 1.1)

    def __post_init__(self) -> None:
        if not self.flips or not self.factors:
            raise ValueError("Augmentations need at least one flip setting and one factor.")
        if False not in self.flips or 1.0 not in [float(f) for f in self.factors]:
            raise ValueError(
                "Augmentations must include the identity (flips containing False, factors "
                f"containing 1.0): the classes are chosen on it; got {self}.")
        if any(not float(f) > 0 for f in self.factors):
            raise ValueError(f"Augmentation factors must be positive, got {self.factors}.")

    @property
    def copies(self) -> list[tuple[bool, float]]:
        return [(bool(flip), float(f)) for flip, f in itertools.product(self.flips, self.factors)]

    @property
    def identity(self) -> int:
        return self.copies.index((False, 1.0))


def option(value: object) -> Augmentations | None:
    """``aug_smooth=`` as :class:`Augmentations` (``True``: the default set) or ``None``."""
    if value is None or value is False:
        return None
    if value is True:
        return Augmentations()
    if isinstance(value, Augmentations):
        return value
    raise ValueError(f"aug_smooth must be a bool or tfg.Augmentations(...), got {value!r}.")


def _flip(x: tf.Tensor, axis: int) -> tf.Tensor:
    return tf.reverse(x, axis=[axis])


def expand(inputs: list, index: int, aug: Augmentations) -> list:
    """``[B, ...]`` inputs as ``[B * m, ...]``: sample ``i``'s copy ``j`` at row ``i * m + j``;
    only input ``index`` (the one the maps are drawn over) is augmented."""
    m = len(aug.copies)
    out = []
    for i, x in enumerate(inputs):
        if i != index:
            out.append(tf.repeat(x, m, axis=0))
            continue
        axis = x.shape.rank - 2  # the last spatial axis, channels last
        copies = [(_flip(x, axis) if flip else x) for flip, _ in aug.copies]
        copies = [tf.cast(tf.cast(c, tf.float32) * f, x.dtype) for c, (_, f) in
                  zip(copies, aug.copies)]
        stacked = tf.stack(copies, axis=1)  # [B, m, ...]
        out.append(tf.reshape(stacked, tf.concat([[-1], tf.shape(x)[1:]], 0)))
    return out


def identity_samples(n: tf.Tensor, aug: Augmentations) -> tf.Tensor:
    """``[n]``: for each of the ``n = B * m`` augmented samples, its unaugmented copy's row."""
    m = len(aug.copies)
    return (tf.range(n) // m) * m + aug.identity


def merge(out: dict, aug: Augmentations, k: int) -> dict:
    """Rows ``[B * m * k, ...]`` -> ``[B * k, ...]``: maps mapped back, scaled and averaged;
    everything else the unaugmented copy's."""
    m = len(aug.copies)
    flipped = tf.constant([flip for flip, _ in aug.copies])

    def per_copy(x):  # [B * m * k, ...] -> [B, m, k, ...]
        return tf.reshape(x, tf.concat([[-1, m, k], tf.shape(x)[1:]], 0))

    def back(x):  # each copy's map flipped back where its input was flipped
        maps = per_copy(x)
        axis = maps.shape.rank - 1
        restored = tf.where(tf.reshape(flipped, [1, m, 1] + [1] * (axis - 2)),
                            tf.reverse(maps, axis=[axis]), maps)
        return restored

    def flat(x):
        return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))

    merged = {}
    for key, value in out.items():
        if key == "full":
            maps = back(value)
            scaled = tf.reshape(resize.scale_by_max(flat(flat(maps))), tf.shape(maps))
            merged[key] = flat(tf.reduce_mean(scaled, axis=1))
        elif key == "raw":
            merged[key] = flat(tf.reduce_mean(back(value), axis=1))
        else:
            merged[key] = flat(per_copy(value)[:, aug.identity])
    return merged
