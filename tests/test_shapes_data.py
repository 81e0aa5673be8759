"""The synthetic shapes generator: determinism, ranges, and that labels match drawings."""

from __future__ import annotations

import numpy as np
import pytest

from tf_gradcam.data.shapes import SHAPE_NAMES, ShapesData, make_shapes, shapes_dataset


@pytest.fixture(scope="module")
def data() -> ShapesData:
    return make_shapes(120, size=64, seed=3)


def test_same_seed_same_arrays() -> None:
    a = make_shapes(20, seed=7)
    b = make_shapes(20, seed=7)
    for field in ("images", "labels", "boxes", "masks"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_different_seed_different_arrays() -> None:
    a = make_shapes(20, seed=7)
    b = make_shapes(20, seed=8)
    assert not np.array_equal(a.images, b.images)
    assert not np.array_equal(a.boxes, b.boxes)


def test_dtypes_shapes_and_ranges(data: ShapesData) -> None:
    assert data.images.shape == (120, 64, 64, 3) and data.images.dtype == np.float32
    assert data.labels.shape == (120,) and data.labels.dtype == np.int64
    assert data.boxes.shape == (120, 4) and np.issubdtype(data.boxes.dtype, np.integer)
    assert data.masks.shape == (120, 64, 64) and data.masks.dtype == np.bool_
    assert data.class_names == ("circle", "square", "triangle")
    assert len(data) == 120
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    # Not a degenerate image set: real contrast within each image.
    assert np.all(data.images.reshape(120, -1).std(axis=1) > 0.05)
    assert set(np.unique(data.labels)) == {0, 1, 2}


def test_boxes_are_tight_around_nonempty_masks(data: ShapesData) -> None:
    for mask, (y0, x0, y1, x1) in zip(data.masks, data.boxes):
        assert 0 <= y0 < y1 <= 64 and 0 <= x0 < x1 <= 64
        inside = mask[y0:y1, x0:x1]
        assert inside.sum() == mask.sum() > 0, "box must contain every mask pixel"
        # Tight: every border row/column of the box touches the shape.
        assert inside[0].any() and inside[-1].any()
        assert inside[:, 0].any() and inside[:, -1].any()


def test_shape_sizes_follow_defaults(data: ShapesData) -> None:
    extent = np.maximum(data.boxes[:, 2] - data.boxes[:, 0], data.boxes[:, 3] - data.boxes[:, 1])
    # Extent 14-26 px; a rotated square/triangle spans a little less or more than that.
    assert extent.min() >= 9 and extent.max() <= 34
    assert extent.max() - extent.min() >= 8, "sizes should vary"


def test_classes_balanced() -> None:
    d = make_shapes(301, seed=0)
    counts = np.bincount(d.labels, minlength=3)
    assert counts.max() - counts.min() <= 1


def test_shape_is_drawn_in_a_colour_different_from_its_surroundings(data: ShapesData) -> None:
    # The object must be visible: its mean colour differs from a ring around it.
    import cv2

    diffs = []
    for img, mask in zip(data.images, data.masks):
        ring = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~mask
        diffs.append(np.linalg.norm(img[mask].mean(0) - img[ring].mean(0)))
    assert np.median(diffs) > 0.3


def test_labels_match_geometry(data: ShapesData) -> None:
    # How much of its minimum-area (rotated) rectangle a shape fills is rotation
    # invariant and separates the classes: circle pi/4, square 1, triangle 1/2.
    import cv2

    fill = []
    for mask in data.masks:
        pts = np.argwhere(mask)[:, ::-1].astype(np.float32)
        (_, _), (w, h), _ = cv2.minAreaRect(pts)
        # +1: minAreaRect fits pixel centres, the mask covers whole pixels.
        fill.append(mask.sum() / ((w + 1) * (h + 1)))
    fill = np.asarray(fill)
    circle, square, triangle = (fill[data.labels == k] for k in range(3))
    assert np.all(np.abs(circle - np.pi / 4) < 0.08), circle
    assert np.all(square > 0.84), square
    assert np.all(triangle < 0.62), triangle


def test_colour_does_not_reveal_the_class() -> None:
    d = make_shapes(600, seed=1)
    mean_colour = np.stack([img[m].mean(0) for img, m in zip(d.images, d.masks)])
    per_class = np.stack([mean_colour[d.labels == k].mean(0) for k in range(3)])
    # Class-average object colours agree within a few hundredths on a [0, 1] scale.
    assert np.abs(per_class - per_class.mean(0)).max() < 0.06


def test_other_classes_and_sizes() -> None:
    d = make_shapes(10, size=32, classes=("star", "cross"), seed=0)
    assert d.images.shape == (10, 32, 32, 3)
    assert d.class_names == ("star", "cross")
    assert set(SHAPE_NAMES) >= {"circle", "square", "triangle", "star", "cross"}
    assert make_shapes(0).images.shape == (0, 64, 64, 3)


def test_clutter_off_gives_smoother_background() -> None:
    plain = make_shapes(50, seed=2, clutter=False, noise=0.0)
    busy = make_shapes(50, seed=2, clutter=True, noise=0.0)

    def background_edges(d: ShapesData) -> float:
        grad = np.abs(np.diff(d.images, axis=2)).sum(-1)
        return float(grad[~(d.masks[:, :, 1:] | d.masks[:, :, :-1])].mean())

    assert background_edges(busy) > 1.5 * background_edges(plain)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"classes": ("circle", "hexagon")},
        {"classes": ("circle", "circle")},
        {"classes": ()},
        {"size": 8},
        {"min_size": 30, "max_size": 20},
        {"max_size": 60},
        {"noise": -0.1},
    ],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        make_shapes(4, **kwargs)


def test_subset(data: ShapesData) -> None:
    sub = data.subset(slice(10, 20))
    assert len(sub) == 10
    np.testing.assert_array_equal(sub.images, data.images[10:20])
    picked = data.subset([3, 1])
    np.testing.assert_array_equal(picked.labels, data.labels[[3, 1]])


def test_shapes_dataset_batches() -> None:
    ds = shapes_dataset(10, seed=4, batch_size=4)
    batches = list(ds.as_numpy_iterator())
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    ref = make_shapes(10, seed=4)
    np.testing.assert_array_equal(images, ref.images)
    np.testing.assert_array_equal(labels, ref.labels)
    assert images.dtype == np.float32 and labels.dtype == np.int64

    one_hot = next(iter(shapes_dataset(ref, batch_size=10, one_hot=True).as_numpy_iterator()))[1]
    np.testing.assert_array_equal(one_hot.argmax(1), ref.labels)
    assert one_hot.dtype == np.float32


def test_the_generator_draws_without_opencv() -> None:
    # OpenCV's anti-aliased lines and bicubic resizing change between releases (4.11 and 5.0
    # differ by whole pixel values on the stripes), so the generator draws in NumPy alone.
    import os
    import subprocess
    import sys

    code = ("import sys; sys.modules['cv2'] = None\n"  # any cv2 import would now fail
            "from tf_gradcam.data.shapes import make_shapes\n"
            "d = make_shapes(6, seed=1); print(d.images.shape)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": root})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(6, 64, 64, 3)"


@pytest.mark.parametrize("kwargs, digest, total, pixel", [
    (dict(n=40, seed=5), "ed1f2a97c874721e", 250206.27258618164,
     [0.3068543076515198, 0.5008053183555603, 0.6349537372589111]),
    (dict(n=24, size=32, classes=("star", "cross"), seed=6, clutter=False), "d51f5222dab8813f",
     38597.03915935848, [0.5097042322158813, 0.611272931098938, 0.4602418839931488]),
])
def test_the_same_seed_gives_the_same_data_on_every_install(kwargs, digest, total, pixel) -> None:
    # Pinned once; .ci/run checks them on the newest stack and on the floor (numpy 1,
    # OpenCV 4.11). Labels, boxes and masks are exact; the images to float rounding (exp and
    # sums may differ in the last bits between numpy builds).
    import hashlib

    d = make_shapes(**kwargs)
    found = hashlib.sha256(d.labels.tobytes() + d.boxes.astype("<i8").tobytes()
                           + np.packbits(d.masks).tobytes()).hexdigest()[:16]
    assert found == digest
    assert float(d.images.astype(np.float64).sum()) == pytest.approx(total, rel=1e-6)
    np.testing.assert_allclose(d.images[3, 10, 20], pixel, atol=1e-5)
