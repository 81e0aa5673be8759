"""A seeded, labelled synthetic image set: one shape on a cluttered background.

Each image holds exactly one filled shape (circle, square, triangle, ...) of a random
size, position, rotation and colour on a background made of smooth colour gradients,
low-frequency colour blotches, thin stripes, soft blobs and pixel noise. Only the
outline tells the classes apart: colour, size and position are drawn from the same
distributions for every class, so a network that learns the labels has to look at
the shape, which is what makes the set useful for checking that a saliency map
points at the object (the ground-truth ``boxes`` and ``masks`` come with it).

Nothing here imports TensorFlow except :func:`shapes_dataset`, so generating
arrays stays cheap for tests and scripts. Nothing here uses OpenCV either: the shapes, the
anti-aliased stripes and the bicubic blotches are drawn in NumPy, because OpenCV's own drawing
and resizing change from one release to another (its anti-aliased lines by whole pixel
values between 4.11 and 5.0), and the same seed must give the same data on every install.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["SHAPE_NAMES", "ShapesData", "make_shapes", "shapes_dataset"]


# eq=False: a generated == on array fields would raise "truth value is ambiguous".
@dataclass(frozen=True, eq=False)
class ShapesData:
    """A labelled batch of synthetic shape images.

    Attributes:
        images: ``[N, S, S, 3] float32`` RGB in ``[0, 1]``.
        labels: ``[N] int64`` class index into ``class_names``.
        boxes: ``[N, 4] int64`` tight box around the shape as ``(y0, x0, y1, x1)``,
            start inclusive and end exclusive, so ``masks[i, y0:y1, x0:x1]`` holds
            every object pixel.
        masks: ``[N, S, S] bool`` the shape's pixels.
        class_names: the class name of each label index.
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: slice | Sequence[int] | np.ndarray) -> ShapesData:
        """The samples selected by ``index`` (a slice, index array or boolean mask)."""
        if not isinstance(index, slice):
            index = np.asarray(index)
        return ShapesData(
            images=self.images[index],
            labels=self.labels[index],
            boxes=self.boxes[index],
            masks=self.masks[index],
            class_names=self.class_names,
        )


# --- shape outlines -------------------------------------------------------------
# Each drawer fills ``canvas`` (uint8, one channel) with 255 inside a shape centred
# at (cy, cx) whose extent is about ``s`` pixels, rotated by ``angle`` radians from its
# upright pose (square axis-aligned, triangle and star with a tip at the top).


def _polygon(
    canvas: np.ndarray, cy: float, cx: float, radii: np.ndarray, angles: np.ndarray
) -> None:
    """Fill the polygon with vertices at ``radii`` and ``angles`` around ``(cy, cx)``: every
    pixel whose centre lies inside it (even-odd rule; pixel ``(i, j)`` has its centre at
    ``y = i, x = j``)."""
    xs = cx + radii * np.cos(angles)
    ys = cy + radii * np.sin(angles)
    h, w = canvas.shape
    r0, r1 = max(0, int(np.floor(ys.min()))), min(h, int(np.ceil(ys.max())) + 1)
    c0, c1 = max(0, int(np.floor(xs.min()))), min(w, int(np.ceil(xs.max())) + 1)
    py = np.arange(r0, r1, dtype=np.float64)[:, None, None]
    px = np.arange(c0, c1, dtype=np.float64)[None, :, None]
    x0, y0 = xs, ys
    x1, y1 = np.roll(xs, -1), np.roll(ys, -1)
    spans = (y0 > py) != (y1 > py)  # the edge crosses the pixel's row
    with np.errstate(divide="ignore", invalid="ignore"):
        at = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
    inside = (np.count_nonzero(spans & (px < at), axis=-1) % 2).astype(bool)
    canvas[r0:r1, c0:c1][inside] = 255


def _circle(canvas: np.ndarray, cy: float, cx: float, s: float, angle: float) -> None:
    del angle  # a circle has no orientation
    h, w = canvas.shape
    yy = np.arange(h, dtype=np.float64)[:, None] - cy
    xx = np.arange(w, dtype=np.float64)[None, :] - cx
    canvas[yy * yy + xx * xx <= (s / 2) ** 2] = 255


def _square(canvas: np.ndarray, cy: float, cx: float, s: float, angle: float) -> None:
    # Side s * 0.8: its area (0.64 s^2) stays close to the circle's (0.79 s^2) so that
    # area is a weak cue and the network has to use corners and edges.
    r = 0.8 * s / np.sqrt(2.0)
    _polygon(canvas, cy, cx, np.full(4, r), angle + np.pi / 4 + np.arange(4) * np.pi / 2)


def _triangle(canvas: np.ndarray, cy: float, cx: float, s: float, angle: float) -> None:
    # Circumradius 0.62 s: area 0.5 s^2, again close to the other classes.
    _polygon(canvas, cy, cx, np.full(3, 0.62 * s), angle - np.pi / 2 + np.arange(3) * 2 * np.pi / 3)


def _star(canvas: np.ndarray, cy: float, cx: float, s: float, angle: float) -> None:
    radii = np.tile([0.55 * s, 0.25 * s], 5)
    _polygon(canvas, cy, cx, radii, angle - np.pi / 2 + np.arange(10) * np.pi / 5)


def _cross(canvas: np.ndarray, cy: float, cx: float, s: float, angle: float) -> None:
    # A thick plus sign: 12 corners on two radii (arm ends and inner corners).
    a, b = 0.5 * s, 0.17 * s
    corners = np.array(
        [(b, a), (b, b), (a, b), (a, -b), (b, -b), (b, -a),
         (-b, -a), (-b, -b), (-a, -b), (-a, b), (-b, b), (-b, a)]
    )
    radii = np.hypot(corners[:, 0], corners[:, 1])
    angles = np.arctan2(corners[:, 1], corners[:, 0]) + angle
    _polygon(canvas, cy, cx, radii, angles)


_DRAWERS: dict[str, Callable[[np.ndarray, float, float, float, float], None]] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "star": _star,
    "cross": _cross,
}

SHAPE_NAMES: tuple[str, ...] = tuple(_DRAWERS)
"""Every shape name :func:`make_shapes` can draw."""


# --- background -----------------------------------------------------------------


def _backgrounds(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``[n, size, size, 3] float32`` smooth gradients plus low-frequency blotches."""
    grid = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    base = rng.uniform(0.2, 0.8, (n, 1, 1, 3)).astype(np.float32)
    slope_y = rng.uniform(-0.25, 0.25, (n, 1, 1, 3)).astype(np.float32)
    slope_x = rng.uniform(-0.25, 0.25, (n, 1, 1, 3)).astype(np.float32)
    bg = np.empty((n, size, size, 3), dtype=np.float32)
    np.multiply(slope_y, yy[None, :, :, None], out=bg)
    bg += slope_x * xx[None, :, :, None]
    bg += base
    # A coarse random grid upsampled bicubically gives blotches a few times larger
    # than the shapes, so edges in the background are soft while the shape's are sharp.
    coarse = rng.normal(0.0, 0.08, (n, 4, 4, 3)).astype(np.float32)
    up = _bicubic_matrix(4, size)
    bg += np.einsum("yi,nijc,xj->nyxc", up, coarse.astype(np.float64), up,
                    optimize=True).astype(np.float32)
    return bg


def _bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` float64 weights of a bicubic upsampling along one axis (Keys kernel
    with a = -0.75, pixel centres aligned, edges replicated: what OpenCV's INTER_CUBIC does)."""
    a = -0.75

    def kernel(t: np.ndarray) -> np.ndarray:
        t = np.abs(t)
        return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                        np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))

    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    base = np.floor(src)
    weights = np.zeros((n_out, n_in))
    for k in range(-1, 3):
        taps = base + k
        np.add.at(weights, (np.arange(n_out), np.clip(taps, 0, n_in - 1).astype(int)),
                  kernel(src - taps))
    return weights


def _add_stripes(rng: np.random.Generator, image: np.ndarray, size: int) -> None:
    """Thin straight lines across the image: sharp edges that belong to no class.

    Each line is anti-aliased by coverage: a pixel whose centre lies ``d`` pixels from the
    line takes ``clip(thickness / 2 + 0.5 - d, 0, 1)`` of the line's colour."""
    grid = np.arange(size, dtype=np.float64)
    for _ in range(rng.integers(0, 4)):
        p0 = rng.uniform(0, size, 2)  # (x, y) of a point on the line
        direction = rng.uniform(0, np.pi)
        colour = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        thickness = int(rng.integers(1, 3))
        # Distance of each pixel centre to the line through p0 along (cos, sin).
        dist = np.abs((grid[None, :] - p0[0]) * np.sin(direction)
                      - (grid[:, None] - p0[1]) * np.cos(direction))
        cover = np.clip(thickness / 2 + 0.5 - dist, 0.0, 1.0).astype(np.float32)[..., None]
        image *= 1.0 - cover
        image += cover * colour


def _add_blobs(rng: np.random.Generator, image: np.ndarray, size: int) -> None:
    """Soft Gaussian blobs: object-sized colour changes without any outline."""
    n_blobs = int(rng.integers(0, 3))
    if n_blobs == 0:
        return
    grid = np.arange(size, dtype=np.float64)
    for _ in range(n_blobs):
        cy, cx = rng.uniform(0, size, 2)
        sigma = rng.uniform(0.06, 0.15) * size
        weight = np.exp(-((grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2)
                        / (2 * sigma**2))
        colour = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        # Explicit dtypes (float64 weights, then float32): numpy 1 and 2 promote a float64
        # scalar with a float32 array differently (NEP 50), and the images must not depend
        # on the numpy version.
        strength = np.float32(rng.uniform(0.3, 0.7))
        w = (strength * weight.astype(np.float32))[..., None]
        image *= 1.0 - w
        image += w * colour


def _shape_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A random colour that stands out from ``background`` (the pixels under the shape).

    Hue is uniform for every class; only a minimum distance from the local background
    is enforced, so the shape is visible without colour carrying the label.
    """
    local = background.reshape(-1, 3).mean(axis=0)
    best, best_dist = None, -1.0
    for _ in range(16):
        colour = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        dist = float(np.linalg.norm(colour - local))
        if dist >= 0.45:
            return colour
        if dist > best_dist:
            best, best_dist = colour, dist
    return best  # type: ignore[return-value]


# --- public API -----------------------------------------------------------------


def make_shapes(
    n: int,
    size: int = 64,
    classes: Sequence[str] = ("circle", "square", "triangle"),
    seed: int = 0,
    *,
    min_size: int | None = None,
    max_size: int | None = None,
    noise: float = 0.04,
    clutter: bool = True,
    rotation: float = 180.0,
) -> ShapesData:
    """Generate ``n`` labelled images, each with one shape on a textured background.

    The output depends only on the arguments: the same ``seed`` gives the same arrays.
    Labels are balanced (class counts differ by at most one) and shuffled.

    Args:
        n: number of images, ``>= 0``.
        size: image height and width in pixels, ``>= 16``.
        classes: the shape names, one per class, in label order; any of
            :data:`SHAPE_NAMES` (``"circle"``, ``"square"``, ``"triangle"``, ``"star"``,
            ``"cross"``), no repeats.
        seed: seed of the NumPy generator that draws everything.
        min_size, max_size: range of the shape's extent in pixels (the circle's
            diameter; the other shapes have about the same area). Default
            ``size * 14/64`` to ``size * 26/64``, i.e. 14-26 px on a 64 px image.
        noise: standard deviation of the per-pixel Gaussian noise (image in ``[0, 1]``).
        clutter: add distractors to the background (thin stripes and soft blobs).
        rotation: shapes are turned by a uniform random angle in ``[-rotation, rotation]``
            degrees from upright; 0 draws every shape upright.

    Returns:
        A :class:`ShapesData` with ``images [n, size, size, 3] float32 in [0, 1]``,
        ``labels [n] int64``, ``boxes [n, 4] int64 (y0, x0, y1, x1)``,
        ``masks [n, size, size] bool`` and ``class_names``.

    Raises:
        ValueError: for an unknown or repeated class name, or out-of-range sizes.
    """
    n = int(n)
    size = int(size)
    class_names = tuple(str(c) for c in classes)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    if not class_names:
        raise ValueError("classes must name at least one shape")
    unknown = [c for c in class_names if c not in _DRAWERS]
    if unknown:
        raise ValueError(f"unknown shape(s) {unknown}; choose from {list(SHAPE_NAMES)}")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"classes must not repeat, got {list(class_names)}")
    lo = int(round(size * 14 / 64)) if min_size is None else int(min_size)
    hi = int(round(size * 26 / 64)) if max_size is None else int(max_size)
    # The farthest point of any shape is 0.62 * extent from its centre; with a 1 px
    # margin the whole shape must fit inside the image.
    largest = int((size / 2 - 1) / 0.62)
    if not 4 <= lo <= hi <= largest:
        raise ValueError(
            f"need 4 <= min_size <= max_size <= {largest} for size={size}, "
            f"got min_size={lo}, max_size={hi}"
        )
    if not 0.0 <= rotation <= 180.0:
        raise ValueError(f"rotation must be in [0, 180] degrees, got {rotation}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(class_names)).astype(np.int64)
    images = _backgrounds(rng, n, size)
    masks = np.zeros((n, size, size), dtype=bool)
    boxes = np.zeros((n, 4), dtype=np.int64)
    canvas = np.zeros((size, size), dtype=np.uint8)

    for i in range(n):
        image = images[i]
        if clutter:
            _add_stripes(rng, image, size)
            _add_blobs(rng, image, size)

        extent = rng.uniform(lo, hi)
        # Keep the whole shape (star and triangle tips reach ~0.62 * extent from the
        # centre) plus a 1 px margin inside the image.
        reach = 0.62 * extent + 1.0
        cy, cx = rng.uniform(reach, size - reach, 2)
        angle = np.deg2rad(rng.uniform(-rotation, rotation))
        canvas[:] = 0
        _DRAWERS[class_names[labels[i]]](canvas, cy, cx, extent, angle)
        mask = canvas > 0
        ys, xs = np.nonzero(mask)
        boxes[i] = (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
        masks[i] = mask

        y0, x0, y1, x1 = boxes[i]
        colour = _shape_colour(rng, image[y0:y1, x0:x1][mask[y0:y1, x0:x1]])
        # A faint shading across the shape so it is not a perfectly flat patch.
        shade = rng.uniform(-0.08, 0.08)
        ramp = np.linspace(-shade, shade, y1 - y0, dtype=np.float32)[:, None, None]
        patch = image[y0:y1, x0:x1]
        region = mask[y0:y1, x0:x1]
        patch[region] = (colour[None, None, :] + ramp + np.zeros_like(patch))[region]

    if noise > 0:
        # float32 draws directly: half the memory traffic of normal() + astype.
        grain = rng.standard_normal(images.shape, dtype=np.float32)
        grain *= noise
        images += grain
    np.clip(images, 0.0, 1.0, out=images)
    return ShapesData(
        images=images, labels=labels, boxes=boxes, masks=masks, class_names=class_names
    )


def shapes_dataset(
    n: int | ShapesData = 1000,
    *,
    size: int = 64,
    classes: Sequence[str] = ("circle", "square", "triangle"),
    seed: int = 0,
    batch_size: int = 32,
    shuffle: bool = False,
    one_hot: bool = False,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(image, label)`` batches from :func:`make_shapes`.

    Args:
        n: number of images to generate, or an existing :class:`ShapesData` to wrap
            (then ``size``, ``classes`` are ignored and ``seed`` only seeds shuffling).
        size, classes, seed: passed to :func:`make_shapes`.
        batch_size: images per batch (the last batch may be smaller).
        shuffle: reshuffle the order each epoch (seeded with ``seed``).
        one_hot: give labels as ``[B, num_classes] float32`` instead of ``[B] int64``.

    Returns:
        A dataset yielding ``images [B, size, size, 3] float32 in [0, 1]`` and
        ``labels [B] int64`` (or one-hot ``float32``).
    """
    import tensorflow as tf

    data = n if isinstance(n, ShapesData) else make_shapes(n, size, classes, seed)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    labels: np.ndarray = data.labels
    if one_hot:
        labels = np.eye(len(data.class_names), dtype=np.float32)[data.labels]
    ds = tf.data.Dataset.from_tensor_slices((data.images, labels))
    if shuffle:
        ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)
