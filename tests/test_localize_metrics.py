"""Boxes, masks and metrics against hand-computed values and closed-form models."""

import math

import keras
import numpy as np
import pytest

import tf_gradcam as tfg
from tf_gradcam import localize, metrics

L = keras.layers


def sig(z):
    return 1.0 / (1.0 + math.exp(-z))


# ============================================================================ localize
@pytest.fixture(scope="module")
def two_blobs():
    """A small bright blob (3 x 4, value 1) and a large dim one (6 x 6, value 0.5)."""
    h = np.zeros((20, 20), np.float32)
    h[2:5, 3:7] = 1.0
    h[10:16, 10:16] = 0.5
    return h


def test_bbox_largest_region_wins(two_blobs):
    assert localize.bbox(two_blobs) == (10, 10, 16, 16)
    # above 0.5 * max the dim blob is gone: the bright one is boxed, end exclusive
    assert localize.bbox(two_blobs, 0.6) == (2, 3, 5, 7)
    # only ratios to the max matter
    assert localize.bbox(two_blobs * 7.5) == (10, 10, 16, 16)
    assert all(type(v) is int for v in localize.bbox(two_blobs))


def test_bbox_threshold_rule():
    h = np.zeros((10, 10), np.float32)
    h[5, 5], h[5, 6], h[5, 7], h[5, 8] = 1.0, 0.5, 0.25, 0.1
    assert localize.bbox(h, 0.5) == (5, 5, 6, 7)  # value == threshold * max is kept
    assert localize.bbox(h, 0.6) == (5, 5, 6, 6)
    assert localize.bbox(h, 0.25) == (5, 5, 6, 8)
    assert localize.bbox(h) == (5, 5, 6, 8)  # 0.15: keeps 0.25, drops 0.1
    assert localize.bbox(h, 0.0) == (5, 5, 6, 9)  # the positive support, not the zeros
    assert localize.bbox(h, 1.0) == (5, 5, 6, 6)  # the maximum itself


def test_bbox_connectivity_and_ties():
    h = np.zeros((8, 8), np.float32)
    h[0, 0] = h[1, 1] = h[2, 2] = 1.0  # a diagonal: one region with 8-connectivity
    h[5, 5] = h[5, 6] = 1.0  # two pixels side by side
    assert localize.bbox(h) == (0, 0, 3, 3)
    assert localize.bbox(h, connectivity=4) == (5, 5, 6, 7)

    tie = np.zeros((8, 8), np.float32)
    tie[0:2, 0:2] = 0.5  # first in raster order, less heat
    tie[5:7, 5:7] = 1.0  # same area, more heat: wins
    assert localize.bbox(tie, 0.4) == (5, 5, 7, 7)


def test_empty_and_bad_maps():
    assert localize.bbox(np.zeros((6, 6))) == localize.EMPTY_BOX == (0, 0, 0, 0)
    assert localize.bbox(-np.ones((6, 6))) == (0, 0, 0, 0)
    assert not localize.mask(np.zeros((6, 6))).any()
    assert not localize.mask(np.zeros((6, 6)), largest_only=True).any()
    np.testing.assert_array_equal(localize.bboxes(np.zeros((2, 5, 5))), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"one 2D heatmap.*bboxes\(\)"):
        localize.bbox(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match=r"2D maps only"):
        localize.mask(np.zeros(5))
    with pytest.raises(ValueError, match=r"batch of 2D heatmaps.*heatmap\[None\]"):
        localize.bboxes(np.zeros((5, 5)))
    nan = np.ones((4, 4))
    nan[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        localize.bbox(nan)
    with pytest.raises(ValueError, match=r"threshold.*\[0, 1\]"):
        localize.bbox(np.ones((4, 4)), 1.5)


def test_masks(two_blobs):
    all_above = localize.mask(two_blobs)
    assert all_above.dtype == bool and all_above.sum() == 12 + 36
    largest = localize.mask(two_blobs, largest_only=True)
    assert largest.sum() == 36 and largest[10:16, 10:16].all()
    assert localize.mask(two_blobs, 0.6).sum() == 12

    batch = np.stack([two_blobs, np.zeros_like(two_blobs), two_blobs * 3])
    for largest_only in (False, True):
        got = localize.masks(batch, largest_only=largest_only)
        want = np.stack([localize.mask(b, largest_only=largest_only) for b in batch])
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        localize.bboxes(batch), [[10, 10, 16, 16], [0, 0, 0, 0], [10, 10, 16, 16]]
    )
    expl = tfg.Explanation(
        heatmaps=batch, raw=batch, targets=np.zeros(3, np.int64), scores=np.zeros(3, np.float32)
    )
    np.testing.assert_array_equal(localize.bboxes(expl), localize.bboxes(batch))


def test_boxes_match_make_shapes_convention():
    from tf_gradcam.data import make_shapes

    data = make_shapes(6, size=32, seed=1)
    np.testing.assert_array_equal(localize.bboxes(data.masks.astype(np.float32)), data.boxes)
    assert metrics.pointing_game(data.masks.astype(np.float32), data.masks, tolerance=0) == 1.0


# ============================================================================ IoU, pointing
def test_box_iou_hand_computed():
    assert metrics.box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert metrics.box_iou((0, 0, 4, 4), (1, 1, 3, 3)) == pytest.approx(4 / 16)
    assert metrics.box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert metrics.box_iou((0, 0, 2, 2), (0, 2, 2, 4)) == 0.0  # touching, end exclusive
    assert metrics.box_iou((0, 0, 2, 3), (1, 1, 4, 5)) == pytest.approx(2 / (6 + 12 - 2))
    assert metrics.box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0  # empty boxes: 0, not NaN
    a = np.array([[0, 0, 2, 2], [0, 0, 4, 4], [5, 5, 6, 6]])
    np.testing.assert_allclose(metrics.box_iou(a, (1, 1, 3, 3)), [1 / 7, 0.25, 0.0])
    np.testing.assert_allclose(metrics.box_iou(a, a), [1, 1, 1])
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        metrics.box_iou((0, 0, 1), (0, 0, 1, 1))


def test_pointing_game_tolerance_boxes_and_masks():
    h = np.zeros((4, 40, 40), np.float32)
    h[:, 20, 20] = 1.0
    h[:, 21, 20] = 0.9
    boxes = np.array(
        [
            [35, 18, 40, 25],  # 15 px below the point: a hit at tolerance 15
            [36, 18, 40, 25],  # 16 px: a miss
            [31, 31, 40, 40],  # diagonal, sqrt(11^2 + 11^2) = 15.6 px: a miss (Euclidean)
            [19, 19, 22, 22],  # contains the point
        ]
    )
    np.testing.assert_array_equal(metrics.pointing_hits(h, boxes), [True, False, False, True])
    np.testing.assert_array_equal(
        metrics.pointing_hits(h, boxes, tolerance=16), [True, True, True, True]
    )
    np.testing.assert_array_equal(
        metrics.pointing_hits(h, boxes, tolerance=0), [False, False, False, True]
    )
    assert metrics.pointing_game(h, boxes) == 0.5

    masks = np.zeros((4, 40, 40), bool)
    masks[0, 35, 20] = masks[1, 36, 24] = masks[2, 31, 31] = masks[3, 20, 20] = True
    # (36, 24) is sqrt(16^2 + 4^2) = 16.5 px away
    np.testing.assert_array_equal(metrics.pointing_hits(h, masks), [True, False, False, True])
    np.testing.assert_array_equal(
        metrics.pointing_hits(h, masks, tolerance=16.5), [True, True, True, True]
    )
    masks[3, 20, 20], masks[3, 21, 20] = False, True  # next to the point, not on it
    assert not metrics.pointing_hits(h, masks, tolerance=0)[3]
    assert metrics.pointing_hits(h, masks, tolerance=1)[3]


def test_pointing_game_empty_map_misses():
    h = np.zeros((2, 10, 10), np.float32)
    h[1, 0, 0] = 1.0
    box = np.array([[0, 0, 10, 10]] * 2)
    np.testing.assert_array_equal(metrics.pointing_hits(h, box), [False, True])
    with pytest.raises(ValueError, match="masks"):
        metrics.pointing_hits(h, np.zeros((2, 5)))


def test_localization_accuracy():
    h = np.zeros((3, 12, 12), np.float32)
    h[0, 0:4, 0:4] = 1.0
    h[1, 0:4, 0:4] = 1.0
    gt = np.array(
        [
            [0, 0, 4, 8],  # IoU 16 / 32 = 0.5: localized
            [0, 0, 4, 9],  # IoU 16 / 36 < 0.5
            [0, 0, 4, 4],
        ]
    )  # an all-zero map: the empty box, never localized
    assert metrics.localization_accuracy(h, gt) == pytest.approx(1 / 3)
    assert metrics.localization_accuracy(h, gt, iou=0.4) == pytest.approx(2 / 3)


# ============================================================================ model metrics
K = 4.0  # logit of class 0 = K * mean of the top-left 2 x 2 region; class 1 logit = 0


def _region_model(softmax: bool) -> keras.Model:
    inp = keras.Input((4, 4, 1))
    region = L.Cropping2D(((0, 2), (0, 2)))(inp)
    mean = L.GlobalAveragePooling2D()(region)
    out = L.Dense(2, activation="softmax" if softmax else None)(mean)
    model = keras.Model(inp, out)
    model.layers[-1].set_weights([np.array([[K, 0.0]], np.float32), np.zeros(2, np.float32)])
    return model


@pytest.fixture(scope="module")
def region_models():
    return _region_model(softmax=False), _region_model(softmax=True)


def _maps():
    """Two saliency orders: region first (a good map) and region last (a bad one)."""
    first = np.arange(16, 0, -1, dtype=np.float32).reshape(4, 4)
    first[0:2, 0:2] += 100  # the four region pixels lead
    last = first.copy()
    last[0:2, 0:2] -= 200  # the four region pixels come last
    return np.stack([first, last])


def test_deletion_and_insertion_closed_form(region_models):
    logits_model, softmax_model = region_models
    images = np.ones((2, 4, 4, 1), np.float32)
    maps = _maps()
    s = [sig(K * j / 4) for j in range(5)]  # probability with j of the 4 region pixels present

    deletion = metrics.deletion_curve(logits_model, images, maps, steps=16, batch_size=5)
    np.testing.assert_allclose(deletion.fractions, np.arange(17) / 16)
    np.testing.assert_array_equal(deletion.targets, [0, 0])
    want_first = [s[4 - min(k, 4)] for k in range(17)]
    want_last = [s[4]] * 13 + [s[3], s[2], s[1], s[0]]
    np.testing.assert_allclose(deletion.scores, [want_first, want_last], rtol=1e-6)
    auc_first = (
        (s[4] + s[3]) / 2 + (s[3] + s[2]) / 2 + (s[2] + s[1]) / 2 + (s[1] + s[0]) / 2 + 12 * s[0]
    ) / 16
    auc_last = (
        12 * s[4] + (s[4] + s[3]) / 2 + (s[3] + s[2]) / 2 + (s[2] + s[1]) / 2 + (s[1] + s[0]) / 2
    ) / 16
    np.testing.assert_allclose(deletion.aucs, [auc_first, auc_last], rtol=1e-6)
    assert deletion.aucs[0] < deletion.aucs[1]  # the good map deletes the evidence first
    assert metrics.deletion_auc(logits_model, images, maps, steps=16) == pytest.approx(
        (auc_first + auc_last) / 2, rel=1e-6
    )

    insertion = metrics.insertion_curve(logits_model, images, maps, steps=16, baseline=0.0)
    np.testing.assert_allclose(insertion.scores[0], [s[min(k, 4)] for k in range(17)], rtol=1e-6)
    auc_ins = (
        (s[0] + s[1]) / 2 + (s[1] + s[2]) / 2 + (s[2] + s[3]) / 2 + (s[3] + s[4]) / 2 + 12 * s[4]
    ) / 16
    assert insertion.aucs[0] == pytest.approx(auc_ins, rel=1e-6)
    assert insertion.aucs[0] > insertion.aucs[1]

    # a softmax head gives the same probabilities ("auto" sees it), in any batch size
    same = metrics.deletion_curve(softmax_model, images, maps, steps=16, batch_size=64)
    np.testing.assert_allclose(same.scores, deletion.scores, rtol=1e-6)
    # apply_softmax=False on the logits model scores the raw logit K * mean instead
    raw = metrics.deletion_curve(logits_model, images[:1], maps[:1], steps=16, apply_softmax=False)
    np.testing.assert_allclose(
        raw.scores[0], [K * (4 - min(k, 4)) / 4 for k in range(17)], rtol=1e-6
    )


def test_fewer_steps_targets_and_blur(region_models):
    logits_model, _ = region_models
    images = np.ones((2, 4, 4, 1), np.float32)
    maps = _maps()
    s4, s0 = sig(K), 0.5
    coarse = metrics.deletion_curve(logits_model, images, maps, steps=4)
    np.testing.assert_allclose(coarse.fractions, [0, 0.25, 0.5, 0.75, 1])
    assert coarse.aucs[0] == pytest.approx(0.25 * ((s4 + s0) / 2 + 3 * s0), rel=1e-6)
    # class 1 has probability 1 - p0 along the same curve
    other = metrics.deletion_curve(logits_model, images, maps, 1, steps=4)
    np.testing.assert_allclose(other.scores, 1 - coarse.scores, rtol=1e-6)
    # an Explanation's targets are used when none are given
    expl = tfg.Explanation(
        heatmaps=maps, raw=maps, targets=np.array([1, 1]), scores=np.zeros(2, np.float32)
    )
    np.testing.assert_allclose(
        metrics.deletion_curve(logits_model, images, expl, steps=4).scores, other.scores, rtol=1e-6
    )
    # RISE's blurred canvas of a constant image is the image: insertion stays at p(full image)
    blur = metrics.insertion_curve(logits_model, images, maps, steps=4)
    np.testing.assert_allclose(blur.scores, s4, rtol=1e-5)
    assert blur.auc == pytest.approx(s4, rel=1e-5)
    with pytest.raises(ValueError, match="do not match"):
        metrics.deletion_auc(logits_model, images, maps[:, :3], steps=4)
    with pytest.raises(ValueError, match="out of range"):
        metrics.deletion_auc(logits_model, images, maps, 2, steps=4)


def test_average_drop_and_increase_hand_computed(region_models):
    logits_model, softmax_model = region_models
    images = np.ones((3, 4, 4, 1), np.float32)
    heat = np.full((3, 4, 4), 0.5, np.float32)
    heat[0] = 0.0
    heat[0, 0:2, 0:2] = 1.0  # keeps the whole region: O = Y
    targets = [0, 0, 1]
    y0, o0 = sig(K), sig(K * 0.5)  # class 0 on the image / on image * 0.5
    drop = 100 / 3 * (0 + (y0 - o0) / y0 + 0)  # class 1 rises: 1 - o0 > 1 - y0, no drop
    for model in (logits_model, softmax_model):
        assert metrics.average_drop(model, images, heat, targets) == pytest.approx(drop, rel=1e-5)
        assert metrics.increase_in_confidence(model, images, heat, targets) == pytest.approx(
            100 / 3
        )
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        metrics.average_drop(logits_model, images, heat * 3, targets)


def test_exports():
    assert tfg.localize is localize and tfg.metrics is metrics
    assert tfg.localize.bbox is localize.bbox and callable(tfg.metrics.pointing_game)
    assert {"localize", "metrics", "explain_dataset"} <= set(tfg.__all__)
