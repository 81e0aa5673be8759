"""ROAD: the noisy linear imputation against hand-solved systems and a dense NumPy solve, and
ROAD's curves on a model that only looks at one region."""

import math

import keras
import numpy as np
import pytest

from tf_gradcam import metrics
from tf_gradcam.metrics import imputation

L = keras.layers
SOLVERS = ("scipy", "cg")


def impute(img, removed, solver, noise=0.0, seed=0):
    return metrics.noisy_linear_imputation(np.asarray(img, np.float64)[None],
                                           np.asarray(removed)[None], noise=noise, seed=seed,
                                           solver=solver)[0]


def dense_reference(img, removed):
    """The ROAD system written out pixel by pixel and solved densely (no SciPy, no CG)."""
    h, w, c = img.shape
    idx = [(y, x) for y in range(h) for x in range(w) if removed[y, x]]
    number = {p: i for i, p in enumerate(idx)}
    a = np.zeros((len(idx), len(idx)))
    b = np.zeros((len(idx), c))
    for (y, x), i in number.items():
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ny, nx = y + dy, x + dx
                if (dy, dx) == (0, 0) or not (0 <= ny < h and 0 <= nx < w):
                    continue
                weight = 1 / 12 if dy and dx else 1 / 6
                a[i, i] += weight
                if removed[ny, nx]:
                    a[i, number[(ny, nx)]] -= weight
                else:
                    b[i] += weight * img[ny, nx]
    out = img.astype(np.float64).copy()
    if idx:
        solution = np.linalg.solve(a, b)
        for (y, x), i in number.items():
            out[y, x] = solution[i]
    return out


@pytest.mark.parametrize("solver", SOLVERS)
def test_hand_solved_imputations(solver):
    centre = np.zeros((3, 3), bool)
    centre[1, 1] = True
    # all 8 neighbours known: e = (b + d + f + h) / 6 + (a + c + g + i) / 12
    assert impute(np.arange(1, 10).reshape(3, 3), centre, solver)[1, 1] == pytest.approx(5.0)
    only = np.zeros((3, 3))
    only[2, 1], only[2, 2] = 6.0, 12.0  # an edge neighbour 6 and a diagonal one 12
    assert impute(only, centre, solver)[1, 1] == pytest.approx(6 / 6 + 12 / 12)
    # a corner: neighbours b, d (1/6) and e (1/12), divided by their sum 5/12
    corner = np.zeros((3, 3), bool)
    corner[0, 0] = True
    img = np.zeros((3, 3))
    img[0, 1], img[1, 0], img[1, 1] = 5.0, 5.0, 10.0
    assert impute(img, corner, solver)[0, 0] == pytest.approx((2 * 5 + 2 * 5 + 10) / 5)
    # two coupled unknowns, b (top edge, S = 2/3) and e, with only h = 12 known non-zero:
    # (2/3) b - e / 6 = 0 and -b / 6 + e = 2  ->  e = 48/23, b = 12/23
    coupled = np.zeros((3, 3), bool)
    coupled[0, 1] = coupled[1, 1] = True
    img = np.zeros((3, 3))
    img[2, 1] = 12.0
    out = impute(img, coupled, solver)
    assert out[1, 1] == pytest.approx(48 / 23, rel=1e-6)
    assert out[0, 1] == pytest.approx(12 / 23, rel=1e-6)
    assert out[2, 1] == 12.0 and out[0, 0] == 0.0  # known pixels untouched


@pytest.mark.parametrize("solver", SOLVERS)
def test_affine_images_come_back_inside_not_at_the_border(solver):
    ramp = np.arange(16, dtype=np.float64).reshape(4, 4)
    inner = np.zeros((4, 4), bool)
    inner[1:3, 1:3] = True
    np.testing.assert_allclose(impute(ramp, inner, solver), ramp, atol=1e-5)
    corner = np.zeros((4, 4), bool)
    corner[0, 0] = True
    assert impute(ramp, corner, solver)[0, 0] == pytest.approx((2 * 1 + 2 * 4 + 5) / 5)  # 3, not 0


@pytest.mark.parametrize("solver", SOLVERS)
def test_imputation_matches_a_dense_solve(solver, rng):
    images = rng.normal(size=(4, 11, 9, 3))
    removed = rng.random((4, 11, 9)) < np.array([0.1, 0.5, 0.9, 0.97])[:, None, None]
    removed[3, 0, 0] = False  # at least one known pixel
    removed[3, 1:, :] = True  # and a big hole far from it
    got = metrics.noisy_linear_imputation(images, removed, noise=0.0, solver=solver)
    want = np.stack([dense_reference(i, m) for i, m in zip(images, removed)])
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=2e-5)  # float32 out
    grey = metrics.noisy_linear_imputation(images[..., 0], removed, noise=0.0, solver=solver)
    np.testing.assert_allclose(grey, want[..., 0], atol=2e-5, rtol=2e-5)


def test_noise_is_on_removed_pixels_only_seeded_and_shared_by_solvers(rng):
    images = rng.random((3, 24, 20, 3))
    removed = rng.random((3, 24, 20)) < 0.5
    clean = metrics.noisy_linear_imputation(images, removed, noise=0.0)
    noisy = {s: metrics.noisy_linear_imputation(images, removed, noise=0.05, seed=7, solver=s)
             for s in SOLVERS}
    np.testing.assert_allclose(noisy["scipy"], noisy["cg"], atol=1e-5)
    diff = noisy["scipy"] - clean
    keep = np.broadcast_to(~removed[..., None], diff.shape)
    assert np.all(diff[keep] == 0)
    assert np.std(diff[~keep]) == pytest.approx(0.05, rel=0.05)
    again = metrics.noisy_linear_imputation(images, removed, noise=0.05, seed=7)
    np.testing.assert_array_equal(again, noisy["scipy"])
    other = metrics.noisy_linear_imputation(images, removed, noise=0.05, seed=8)
    assert not np.allclose(other, again)


def test_imputation_refuses_what_has_no_answer(rng):
    img = rng.random((1, 4, 4))
    with pytest.raises(ValueError, match="every pixel removed"):
        metrics.noisy_linear_imputation(img, np.ones((1, 4, 4), bool))
    with pytest.raises(ValueError, match="bool mask"):
        metrics.noisy_linear_imputation(img, np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="solver"):
        metrics.noisy_linear_imputation(img, np.zeros((1, 4, 4), bool), solver="lu")
    nothing = metrics.noisy_linear_imputation(img, np.zeros((1, 4, 4), bool))
    np.testing.assert_allclose(nothing, img, rtol=1e-6)


# ============================================================================ ROAD on a model
K, BIAS = 4.0, 1.0  # logit 0 = K * mean of the top-left 4 x 4 block, logit 1 = BIAS


@pytest.fixture(scope="module")
def region_model():
    inp = keras.Input((8, 8, 1))
    region = L.Cropping2D(((0, 4), (0, 4)))(inp)
    out = L.Dense(2)(L.GlobalAveragePooling2D()(region))
    model = keras.Model(inp, out)
    model.layers[-1].set_weights([np.array([[K, 0.0]], np.float32),
                                  np.array([0.0, BIAS], np.float32)])
    return model


def sig(z):
    return 1 / (1 + math.exp(-z))


def region_case():
    """Image 1 on the block and 0 elsewhere; a perfect map (block first) and its inverse."""
    img = np.zeros((8, 8, 1), np.float32)
    img[:4, :4] = 1.0
    good = np.zeros((8, 8), np.float32)
    good[:4, :4] = 1.0
    return np.stack([img, img]), np.stack([good, -good])


def test_road_perfect_and_inverse_maps_closed_form(region_model):
    images, maps = region_case()
    result = metrics.road(region_model, images, maps, 0, fractions=(0.25, 0.5, 0.75), noise=0.0)
    clean, gone = sig(K - BIAS), sig(-BIAS)  # block intact / block imputed from zeros: 0
    np.testing.assert_allclose(result.original, [clean, clean], rtol=1e-6)
    # perfect map: MoRF removes the block first (its neighbours are all 0, so it imputes to 0),
    # LeRF removes zeros only and leaves the block; the inverse map does the opposite
    np.testing.assert_allclose(result.morf, [[gone] * 3, [clean] * 3], rtol=1e-5)
    np.testing.assert_allclose(result.lerf, [[clean] * 3, [gone] * 3], rtol=1e-5)
    np.testing.assert_allclose(result.combined_per_image, [(clean - gone) / 2, (gone - clean) / 2],
                               rtol=1e-5)
    assert result.combined == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(result.morf_change[0], gone - clean, rtol=1e-5)
    # hits against the clean top class (0): lost exactly where the block is imputed away
    np.testing.assert_array_equal(result.labels, [0, 0])
    np.testing.assert_array_equal(result.morf_hits, [[False] * 3, [True] * 3])
    np.testing.assert_allclose(result.lerf_accuracy, [0.5, 0.5, 0.5])
    # ground-truth labels replace the clean prediction
    other = metrics.road(region_model, images, maps, 0, fractions=(0.25,), noise=0.0,
                         labels=[1, 1])
    np.testing.assert_array_equal(other.morf_hits[:, 0], [True, False])


def test_road_morf_is_monotone_for_a_perfect_map(region_model, rng):
    images, maps = region_case()
    good = maps[:1] + 0.01 * rng.random((1, 8, 8))  # random order inside the block, block first
    fractions = np.arange(1, 20) / 20
    for solver in SOLVERS:
        result = metrics.road(region_model, images[:1], good, 0, fractions=fractions, noise=0.0,
                              solver=solver)
        # removing more of the block never raises its imputed mean (maximum principle)
        assert np.all(np.diff(result.morf[0]) <= 1e-6), result.morf[0]
        assert result.morf[0, -1] == pytest.approx(sig(-BIAS), rel=1e-5)


def test_road_batching_solvers_and_tie_breaks(region_model, rng):
    images = rng.random((3, 8, 8, 1)).astype(np.float32)
    # well-separated values: ROAD's 1e-4 jitter cannot reorder them
    maps = np.stack([rng.permutation(64).reshape(8, 8) / 64 for _ in range(3)]).astype(np.float32)
    base = metrics.road(region_model, images, maps, noise=0.02, seed=3, batch_size=4)
    same = metrics.road(region_model, images, maps, noise=0.02, seed=3, batch_size=64,
                        solver="cg")
    np.testing.assert_allclose(same.morf, base.morf, atol=1e-6)
    np.testing.assert_allclose(same.lerf, base.lerf, atol=1e-6)
    np.testing.assert_array_equal(base.fractions, imputation.DEFAULT_FRACTIONS)
    assert base.morf.shape == base.lerf.shape == (3, 9)
    # ROAD's jitter only reorders ties: a map without ties keeps its result
    jitter = metrics.road(region_model, images, maps, noise=0.02, seed=3, tie_break="jitter")
    np.testing.assert_allclose(jitter.morf, base.morf, atol=1e-6)
    # a constant map: raster order for MoRF, reverse raster for LeRF; jitter breaks them
    flat = np.zeros((3, 8, 8), np.float32)
    raster = metrics.road(region_model, images, flat, noise=0.0, fractions=(0.5,))
    jittered = metrics.road(region_model, images, flat, noise=0.0, fractions=(0.5,),
                            tie_break="jitter")
    assert not np.allclose(raster.morf, jittered.morf)


def test_road_refuses_bad_arguments(region_model, rng):
    images = rng.random((2, 8, 8, 1)).astype(np.float32)
    maps = rng.random((2, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        metrics.road(region_model, images, maps, fractions=(0.5, 1.0))
    with pytest.raises(ValueError, match="noise"):
        metrics.road(region_model, images, maps, noise=-1)
    with pytest.raises(ValueError, match="tie_break"):
        metrics.road(region_model, images, maps, tie_break="random")
    with pytest.raises(ValueError, match="out of range"):
        metrics.road(region_model, images, maps, 5)
    with pytest.raises(ValueError, match="labels"):
        metrics.road(region_model, images, maps, labels=[0])
