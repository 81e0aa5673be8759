"""Sanity checks for saliency maps (Adebayo, Gilmer, Muelly, Goodfellow, Hardt and Kim, NeurIPS
2018, arXiv:1810.03292): does the map change when what it claims to explain is destroyed?

* :func:`model_randomization`: re-initialise the network's layers **from the top down**,
  cumulatively (``mode="cascading"``: state ``j`` has the top ``j`` layers random) or one at a
  time (``mode="independent"``), and compare each state's maps with the trained model's.
* :func:`label_randomization`: train the same architecture on permuted labels (the user's
  ``train`` function) and compare its maps with the trained model's, image by image.

For a map that explains the model the **desired** outcome is **low** similarity. Measures
(:mod:`tf_gradcam.metrics.similarity`): Spearman's rank correlation, of the maps and of their
absolute values, SSIM, and Spearman's correlation of HOG descriptors (Adebayo's three).

**The user's model is never modified.** The randomised network is a copy
(``keras.models.clone_model(model, recursive=True)`` and ``set_weights``); the copy is checked
to share no variable with the model before anything is assigned, and the explainer is built on
the copy once (assignments change values, not shapes: its compiled step is reused by every
state).

What is re-initialised, as in Adebayo's code: every **trainable** variable of a layer, with the
layer's own initializer (``kernel_initializer``, ``bias_initializer``, ``gamma_initializer``, ...)
seeded from ``seed``; frozen layers (``trainable=False``) are left alone, and batch-norm moving
statistics are kept as trained (``batchnorm="reset"`` resets them too). A weight whose
initializer cannot be found is shuffled instead (its values randomly permuted). A "layer" is a
Keras layer that owns trainable weights, nested models walked into, in execution order, top
first; ``layers=`` takes names, paths or name prefixes instead (a prefix is one block, e.g.
``"conv5_block3"``). The explained class stays the trained model's (``target="original"``;
``"randomized"`` explains each state's own top class, as the paper's code did).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

import keras
import numpy as np

from tf_gradcam.engine import _keras, graph
from tf_gradcam.metrics._inputs import check_seed, progress
from tf_gradcam.metrics.similarity import (
    hog_similarity,
    rank_correlation,
    structural_similarity,
)

__all__ = [
    "MEASURES",
    "SanityResult",
    "label_randomization",
    "model_randomization",
    "randomizable_layers",
]

#: The similarity measures computed for each state, in SanityResult's fields.
MEASURES = ("spearman", "spearman_abs", "ssim", "hog")
_BATCHNORM_STATISTICS = ("moving_mean", "moving_variance")
# Initializer attributes that do not belong to a layer's main kernel.
_NOT_KERNEL = ("bias", "gamma", "beta", "moving_", "recurrent", "embeddings")

LayerGroups = Union[None, Sequence[Union[str, Sequence[str]]]]


@dataclass
class SanityResult:
    """Similarity of each state's maps with the trained model's, for ``N`` images.

    Attributes:
        states: ``[L]`` what state ``j`` randomised: a layer's path (several joined by ``+``
            for a block), or ``"random labels"``. In cascading mode state ``j`` has states
            ``0..j`` all random.
        mode: ``"cascading"``, ``"independent"`` or ``"labels"``.
        spearman, spearman_abs, ssim, hog: ``[L, N] float64`` per state and image (NaN where a
            map is constant, see :mod:`tf_gradcam.metrics.similarity`).
        targets: ``[N] int64`` the classes explained in the trained model.
        heatmaps: ``[L + 1, N, ...]`` every state's maps (state 0 the trained model's), when
            asked for with ``keep_maps=True``, else ``None``.
    """

    states: list[str]
    mode: str
    spearman: np.ndarray
    spearman_abs: np.ndarray
    ssim: np.ndarray
    hog: np.ndarray
    targets: np.ndarray
    heatmaps: np.ndarray | None = None

    def mean(self, measure: str = "spearman") -> np.ndarray:
        """``[L]`` the measure's mean over images (NaNs left out) per state."""
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}.")
        values = getattr(self, measure)
        finite = np.isfinite(values)
        total = np.where(finite, values, 0.0).sum(axis=1)
        count = finite.sum(axis=1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def final(self, measure: str = "spearman") -> np.ndarray:
        """``[N]`` the measure at the last state (the whole network randomised, in cascading
        mode)."""
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}.")
        return getattr(self, measure)[-1]


def randomizable_layers(model: keras.Model) -> list[str]:
    """The paths of the layers :func:`model_randomization` re-initialises, top first."""
    return [path for path, _ in _units(model)][::-1]


def model_randomization(
    model: keras.Model,
    images: Any,
    method: Any = "gradcam",
    targets: Any = None,
    *,
    layer: Any = None,
    method_options: dict | None = None,
    mode: str = "cascading",
    layers: LayerGroups = None,
    batchnorm: str = "keep",
    target: str = "original",
    seed: int = 0,
    batch_size: int = 32,
    keep_maps: bool = False,
    verbose: int = 0,
) -> SanityResult:
    """Adebayo's model-parameter randomisation test, on a copy of ``model``.

    Args:
        model: a built functional or ``Sequential`` ``keras.Model`` (never modified).
        images: ``[N, *input_shape]`` inputs (one model input).
        method: a method name of ``tfg.METHODS`` or an explainer class.
        targets: ``None`` (each image's top class in the trained model), an int or ``N`` ints.
        layer, method_options: the explained layer and the method's keyword arguments.
        mode: ``"cascading"`` (top down, cumulative) or ``"independent"`` (one at a time).
        layers: what to randomise, in order: names, paths or name prefixes (a list inside the
            list is one block); default every layer with trainable weights, top first
            (:func:`randomizable_layers`).
        batchnorm: ``"keep"`` the moving statistics (Adebayo) or ``"reset"`` them.
        target: ``"original"`` (the trained model's classes) or ``"randomized"`` (each
            state's top class).
        seed: seeds the re-initialisation.
        batch_size: images per explainer call.
        keep_maps: keep every state's maps in the result.
        verbose: 0 silent, 1 a progress bar over the states, 2 one line at the end.

    Returns:
        A :class:`SanityResult` with one row per state.
    """
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode must be 'cascading' or 'independent', got {mode!r}.")
    if batchnorm not in ("keep", "reset"):
        raise ValueError(f"batchnorm must be 'keep' or 'reset', got {batchnorm!r}.")
    if target not in ("original", "randomized"):
        raise ValueError(f"target must be 'original' or 'randomized', got {target!r}.")
    seed = check_seed(seed)
    copy = clone(model)
    groups = _groups(copy, layers)
    explainer = make_explainer(copy, method, layer, method_options)
    base = explainer(images, targets, batch_size=batch_size)
    classes = _classes(base.targets)
    explain_as = classes if target == "original" else None
    kept = [base.heatmaps] if keep_maps else []
    rows: dict[str, list[np.ndarray]] = {m: [] for m in MEASURES}
    bar = progress(len(groups), verbose, unit="state")
    for j, (_, units) in enumerate(groups):
        saved = [(v, v.numpy()) for _, unit in units for v in _variables(unit, batchnorm)]
        for u, (_, unit) in enumerate(units):
            _reinitialise(unit, batchnorm, _derived_seed(seed, j, u))
        with warnings.catch_warnings():  # empty maps are an expected outcome here, not a slip
            warnings.simplefilter("ignore", RuntimeWarning)
            maps = explainer(images, explain_as, batch_size=batch_size).heatmaps
        for name, values in similarities(base.heatmaps, maps).items():
            rows[name].append(values)
        if keep_maps:
            kept.append(maps)
        if mode == "independent":
            for v, value in saved:
                v.assign(value)
        bar.update(j + 1)
    return SanityResult(
        states=[name for name, _ in groups], mode=mode,
        **{m: np.stack(rows[m]) if rows[m] else np.zeros((0, len(classes))) for m in MEASURES},
        targets=classes, heatmaps=np.stack(kept) if keep_maps else None,
    )


def label_randomization(
    model: keras.Model,
    train: Callable[[np.ndarray, np.ndarray], keras.Model],
    x_train: Any,
    y_train: Any,
    images: Any,
    method: Any = "gradcam",
    targets: Any = None,
    *,
    layer: Any = None,
    method_options: dict | None = None,
    seed: int = 0,
    batch_size: int = 32,
    keep_maps: bool = False,
) -> SanityResult:
    """Adebayo's data randomisation test: ``train(x_train, permuted y_train)`` gives a model of
    the same architecture fitted to labels that mean nothing; its maps of ``images`` (for the
    classes the trained ``model`` explains) are compared with ``model``'s.

    Only cheap for small data and models (Adebayo trained until the random labels were fitted).
    ``model`` is only read.

    Returns:
        A :class:`SanityResult` with one state, ``"random labels"``.
    """
    seed = check_seed(seed)
    labels = np.asarray(y_train.numpy() if hasattr(y_train, "numpy") else y_train)
    permuted = np.random.default_rng(seed).permutation(labels)
    random_model = train(x_train, permuted)
    if not isinstance(random_model, keras.Model):
        raise TypeError(f"train(x, y) must return the trained keras.Model, got "
                        f"{type(random_model).__name__}.")
    base = make_explainer(model, method, layer, method_options)(images, targets,
                                                                batch_size=batch_size)
    classes = _classes(base.targets)
    maps = make_explainer(random_model, method, layer, method_options)(
        images, classes, batch_size=batch_size).heatmaps
    sims = similarities(base.heatmaps, maps)
    return SanityResult(
        states=["random labels"], mode="labels", **{m: sims[m][None] for m in MEASURES},
        targets=classes, heatmaps=np.stack([base.heatmaps, maps]) if keep_maps else None,
    )


def similarities(reference: np.ndarray, maps: np.ndarray) -> dict[str, np.ndarray]:
    """``{measure: [N]}`` of each map with its reference map (SSIM and HOG for 2D maps only,
    NaN otherwise)."""
    out = {
        "spearman": rank_correlation(reference, maps),
        "spearman_abs": rank_correlation(reference, maps, absolute=True),
    }
    if reference.ndim == 3:
        out["ssim"] = structural_similarity(reference, maps)
        out["hog"] = hog_similarity(reference, maps)
    else:
        out["ssim"] = out["hog"] = np.full(len(reference), np.nan)
    return out


# ------------------------------------------------------------------------ the copy
def clone(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with its own variables holding the same values."""
    if not isinstance(model, keras.Model) or not graph.is_graph_model(model):
        raise ValueError(
            "Model randomisation re-initialises a copy of the model made with "
            "keras.models.clone_model, which needs a functional or Sequential keras.Model; got "
            f"{type(model).__name__}. Rebuild it as a functional model."
        )
    try:
        copy = keras.models.clone_model(model, recursive=True)
    except Exception as exc:  # Keras raises many types for a model it cannot rebuild
        raise ValueError(f"keras.models.clone_model could not copy this model: {exc}") from exc
    copy.set_weights(model.get_weights())
    shared = {id(v) for v in model.weights} & {id(v) for v in copy.weights}
    if shared:  # never assign into a variable the user's model also holds
        raise RuntimeError(f"The copy of {model.name!r} shares {len(shared)} variables with it; "
                           "model randomisation refuses to run on shared weights.")
    return copy


def make_explainer(model: keras.Model, method: Any, layer: Any, options: dict | None):
    """The explainer of ``method`` (a name or a class) on ``model``; ``layer`` is dropped for
    a method that explains the input (guided backpropagation)."""
    from tf_gradcam.engine.explainer import Explainer, get_method

    cls = get_method(method) if isinstance(method, str) else method
    if not (isinstance(cls, type) and issubclass(cls, Explainer)):
        raise TypeError(f"method must be a method name or an explainer class, got {method!r}.")
    return cls(model, layer if cls.uses_layer else None, **(options or {}))


def _units(model: keras.Model) -> list[tuple[str, Any]]:
    """``(path, layer)`` of every layer with trainable weights, in execution order."""
    seen: set[int] = set()
    out = []
    for path, layer, _ in graph.walk(model):
        if graph.is_graph_model(layer) or id(layer) in seen:
            continue
        seen.add(id(layer))
        if any(_keras.own_variables(sub) for sub in _keras.nested_layers(layer)):
            out.append((path, layer))
    return out


def _groups(model: keras.Model, layers: LayerGroups) -> list[tuple[str, list]]:
    """``[(state name, [(path, layer), ...])]`` in the order they are randomised."""
    units = _units(model)
    if layers is None:
        if not units:
            raise ValueError(f"{model.name!r} has no trainable weights to randomise.")
        return [(path, [(path, layer)]) for path, layer in units[::-1]]
    if isinstance(layers, str):
        layers = [layers]
    groups = []
    for entry in layers:
        names = [entry] if isinstance(entry, str) else list(entry)
        chosen: list = []
        for name in names:
            found = [(p, lay) for p, lay in units if p == name or p.rsplit("/", 1)[-1] == name]
            if not found:
                found = [(p, lay) for p, lay in units
                         if p.startswith(name) or p.rsplit("/", 1)[-1].startswith(name)]
            if not found:
                raise ValueError(
                    f"No layer with trainable weights matches {name!r}; the candidates are, top "
                    f"first: {[p for p, _ in units[::-1]][:12]}."
                )
            chosen += [u for u in found if all(u[1] is not c[1] for c in chosen)]
        groups.append(("+".join(p for p, _ in chosen), chosen))
    return groups


def _variables(layer: Any, batchnorm: str) -> list:
    out = []
    for sub in _keras.nested_layers(layer):
        out += _keras.own_variables(sub)
        if batchnorm == "reset" and isinstance(sub, keras.layers.BatchNormalization):
            out += [v for v in _keras.own_variables(sub, trainable=False)
                    if v.name in _BATCHNORM_STATISTICS]
    return out


def _reinitialise(layer: Any, batchnorm: str, seed: int) -> None:
    """Assign fresh values to the layer's trainable variables (and, with ``batchnorm="reset"``,
    batch-norm moving statistics) from the layers' own initializers."""
    rng = np.random.default_rng(seed)
    k = 0
    for sub in _keras.nested_layers(layer):
        variables = _keras.own_variables(sub)
        if batchnorm == "reset" and isinstance(sub, keras.layers.BatchNormalization):
            variables += [v for v in _keras.own_variables(sub, trainable=False)
                          if v.name in _BATCHNORM_STATISTICS]
        for v in variables:
            init = _initializer_for(sub, v.name)
            if init is None:  # no initializer to call: shuffle the trained values
                value = rng.permutation(v.numpy().ravel()).reshape(v.shape)
            else:
                config = init.get_config()
                if "seed" in config:
                    init = type(init).from_config({**config, "seed": _derived_seed(seed, k)})
                value = init(tuple(v.shape), dtype=v.dtype)
            v.assign(value)
            k += 1


def _initializer_for(layer: Any, name: str) -> Any:
    """The layer's initializer of its variable ``name``, or ``None``."""
    attrs = vars(layer)
    for key in (f"{name}_initializer", f"_{name}_initializer"):
        if attrs.get(key) is not None:
            return keras.initializers.get(attrs[key])
    if name.endswith("_kernel"):  # depthwise_kernel -> depthwise_initializer
        return _initializer_for(layer, name[: -len("_kernel")])
    if name == "kernel":  # DepthwiseConv2D's "kernel" is made by its depthwise_initializer
        others = [key for key, value in attrs.items() if key.endswith("_initializer")
                  and value is not None and not key.lstrip("_").startswith(_NOT_KERNEL)]
        if len(others) == 1:
            return keras.initializers.get(attrs[others[0]])
    return None


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] % (2**31 - 1))


def _classes(targets: np.ndarray) -> np.ndarray:
    classes = np.asarray(targets, np.int64)
    if classes.ndim != 1 or (classes < 0).any():
        raise ValueError("The sanity checks explain one class per image (class targets, no "
                         "callable score and no top_k).")
    return classes
