"""``layer=None``: the tensor that still carries spatial information into the head.

For a classifier it is the input of the read-out, the op where the spatial axes leave: a global
pooling (also ``keepdims`` pooling, whose 1x1 map leads on to MobileNet's ``conv_preds``), a
flatten, a reshape to a vector, a token read-out (``x[:, 0]``, a mean over tokens). ConvNeXt's
is the final ``add`` (a bare op), MobileNetV3's the activation before its pooling. Nothing after
the read-out is ever chosen, nor the model's output itself.

For a model whose output is itself spatial (segmentation) it is the tensor that feeds the final
per-pixel classifier: from the output back through ops without weights (softmax, resizing) to
the first op with weights, and its input.

Under a class-token read-out the gradient at every patch token after the last attention is
exactly zero (nothing but the class token reaches the score), so for a transformer the choice
is the input of its last attention: the output of the last block's first norm in a functional
graph, or the input of the last block of a composite encoder (keras-hub's ViT, DeiT, DINOv2).
"""

from __future__ import annotations

from typing import Any

import keras

from tf_gradcam.choose import sublayers
from tf_gradcam.choose.catalog import Catalog
from tf_gradcam.choose.tensors import Selector, TensorRef, _with_layout, candidates, ref_of
from tf_gradcam.choose.tokens import TokensLike, layout
from tf_gradcam.engine import graph

_GLOBAL_POOLING = tuple(getattr(keras.layers, name) for name in (
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D"))
# Read-outs that look at every token (no class-token trap).
_POOLING_WORDS = ("pool", "mean", "average", "flatten", "sum", "max", "reshape")


def _image_input(cat: Catalog) -> tuple[int, int] | None:
    """``(index, spatial rank)`` of the model input the maps are drawn over, or ``None``."""
    best = None
    for i, root in enumerate(cat.roots):
        rank = len(root.shape)
        floating = root.dtype is not None and "int" not in str(root.dtype)
        if floating and rank in (3, 4, 5):
            if best is None or rank > best[1] + 2:
                best = (i, rank - 2)
        elif not floating and rank == 2 and best is None:
            best = (i, 1)  # token ids [N, T]
    return best


def _attention(op: Any) -> bool:
    return isinstance(op, keras.layers.MultiHeadAttention) or "attention" in type(
        op).__name__.lower()


def _holds_attention(layer: Any) -> bool:
    return any(_attention(chain[-1]) for _, chain in sublayers.descendants(layer))


class _Choice:
    def __init__(self, model: keras.Model, cat: Catalog, tokens: TokensLike) -> None:
        self.model, self.cat, self.tokens = model, cat, tokens
        found = _image_input(cat)
        if found is None:
            raise ValueError(
                f"Model {model.name!r} has no layer whose output has spatial axes ([N, T, C], "
                "[N, H, W, C] or [N, D, H, W, C]) computed from an input with them; Grad-CAM "
                "needs a convolutional (or other spatial) layer to explain.")
        self.input, self.rank = found
        root = cat.roots[self.input]
        self.image = tuple(root.shape[1:3]) if self.rank == 2 else None
        self.deps = cat.depends_on([root])

    def grid(self, value: Any) -> Any:
        """The patch grid of a token sequence, or ``None``. An inferred layout needs fewer
        prefix tokens than patches: a sequence that only fits after dropping most of it (a
        CNN's columns fed to an LSTM) is no patch grid."""
        try:
            found = layout(value.shape[1], self.image, self.tokens, "")
        except ValueError:
            return None
        if self.tokens is None and found.prefix >= found.grid[0] * found.grid[1]:
            return None
        return found

    def spatial(self, value: Any) -> bool:
        if id(value) not in self.deps or not value.shape:
            return False
        if len(value.shape) == self.rank + 2:
            return True
        return self.rank == 2 and len(value.shape) == 3 and self.grid(value) is not None

    def readout(self, op: Any, value: Any, out: Any) -> bool:
        """Whether ``out`` no longer carries ``value``'s spatial axes (or collapses them to 1,
        or reorders them: a permutation or reshape makes them other axes)."""
        if not self.spatial(out):
            return True
        name = type(op).__name__.lower()
        if "permute" in name or "transpose" in name:
            return True
        if "reshape" in name and out.shape[1:-1] != value.shape[1:-1]:
            grid = self.grid(out) if len(out.shape) == 3 else None
            flattened = grid is not None and grid.prefix == 0 and grid.grid == tuple(
                value.shape[1:-1])
            return not flattened
        inner = [d for d in value.shape[1:-1]]
        outer = [d for d in out.shape[1:-1]]
        return all(d == 1 for d in outer) and any(d not in (1,) for d in inner)

    def ref_for(self, value: Any) -> TensorRef | None:
        call = self.cat.producers.get(id(value))
        if call is None:
            return None  # a model input: nothing to capture
        for entry in self.cat.entries:
            if entry.call is call and entry.shape == value.shape and (
                    entry.index is None or call.outputs[entry.index] is value):
                return _with_layout(self.model, self.cat, ref_of(self.cat, entry), self.tokens)
        return None

    # ---------------------------------------------------------------- the rules
    def classifier(self) -> TensorRef | None:
        readouts = []
        # Values computed only from read-outs' outputs carry no spatial information any more
        # (MobileNet's 1x1 conv_preds after its keepdims pooling); a squeeze-and-excitation
        # product of a pooled vector with the feature map still does.
        lost: set[int] = set()
        for call in self.cat.calls:
            if graph.is_graph_model(call.op):
                continue
            from_image = [u for u in call.inputs if id(u) in self.deps]
            if from_image and all(id(u) in lost for u in from_image):
                lost.update(id(o) for o in call.outputs)
                continue
            for value in call.inputs:
                if id(value) in lost or not self.spatial(value):
                    continue
                pools = isinstance(call.op, _GLOBAL_POOLING)
                if (pools or all(self.readout(call.op, value, o) for o in call.outputs)):
                    lost.update(id(o) for o in call.outputs)
                    if any(self.cat.reaches_output(o) for o in call.outputs):
                        readouts.append((call, value))
        # The head's read-outs are those after which no spatial tensor follows (not a
        # squeeze-and-excitation pooling, whose vector multiplies a feature map again).
        final = [(c, v) for c, v in readouts if not self.spatial_after(c, lost)]
        if not final:
            return None
        call, value = final[-1]
        if len({id(v) for _, v in final}) > 1:  # several heads (a detector's levels and tasks)
            value = self.trunk([v for _, v in final])
        grid = self.grid(value) if len(value.shape) == 3 and self.rank == 2 else None
        selects = not any(w in type(call.op).__name__.lower() for w in _POOLING_WORDS)
        if grid is not None and grid.prefix > 0 and selects:
            return self.before_last_attention(value) or self.ref_for(value)
        return self.ref_for(value)

    def spatial_after(self, call: Any, lost: set[int]) -> bool:
        """Whether a tensor still carrying spatial information is computed from ``call``'s
        outputs (not one of the 1x1 maps that only follow read-outs, in ``lost``)."""
        after = {id(o) for o in call.outputs}
        for later in self.cat.calls[call.order + 1:]:
            if any(id(v) in after for v in later.inputs):
                if any(self.spatial(o) and id(o) not in lost for o in later.outputs) and (
                        not graph.is_graph_model(later.op)):
                    return True
                after.update(id(o) for o in later.outputs)
        return False

    def trunk(self, values: list) -> Any:
        """The last spatial tensor that every one of ``values`` is computed from (the trunk
        that all of a detector's heads read), or the last of ``values`` if there is none."""
        shared = set.intersection(*(self.cat.ancestors(v) for v in values))
        best = None
        for call in self.cat.calls:
            for v in call.outputs:
                if id(v) in shared and self.spatial(v) and not graph.is_graph_model(call.op):
                    best = v
        return best if best is not None else values[-1]

    def segmenter(self) -> TensorRef | None:
        value = self.cat.outputs[0]
        while True:
            call = self.cat.producers.get(id(value))
            if call is None:
                return None
            spatial_inputs = [v for v in call.inputs if self.spatial(v)]
            if not spatial_inputs:
                return None
            if getattr(call.op, "weights", None):
                return self.ref_for(spatial_inputs[0])  # what the per-pixel classifier reads
            value = spatial_inputs[0]

    def before_last_attention(self, value: Any) -> TensorRef | None:
        """The input of the last attention before ``value`` (through per-token ops)."""
        stack, seen, best = [value], set(), None
        while stack:
            v = stack.pop()
            if id(v) in seen:
                continue
            seen.add(id(v))
            call = self.cat.producers.get(id(v))
            if call is None:
                continue
            if _attention(call.op):
                best = call if best is None or call.order > best.order else best
                continue
            if _holds_attention(call.op):
                return self.last_block_input(call)
            stack.extend(u for u in call.inputs if len(u.shape) == 3)
        return self.ref_for(best.inputs[0]) if best is not None else None

    def last_block_input(self, call: Any) -> TensorRef | None:
        """``input_of`` the last child of a composite encoder that holds an attention."""
        blocks = [(path, chain) for path, chain in sublayers.descendants(call.op)
                  if len(chain) == 1 and _holds_attention(chain[0])]
        if not blocks:
            return None
        entry = next(e for e in self.cat.entries if e.call is call)
        block = blocks[-1][1][0]
        found = sublayers.Found(entry, (call.op, block))
        ref = sublayers.ref(self.model, self.cat, found, Selector(block, "input", 0))
        return _with_layout(self.model, self.cat, ref, self.tokens)


def choose(model: keras.Model, cat: Catalog, tokens: TokensLike = None) -> TensorRef:
    """The automatic target of ``model`` (see the module docstring)."""
    choice = _Choice(model, cat, tokens)
    first = cat.outputs[0] if cat.outputs else None
    ref = (choice.segmenter() if first is not None and choice.spatial(first)
           else choice.classifier())
    if ref is None:
        raise ValueError(
            f"Model {model.name!r} has no tensor with spatial axes that reaches its output "
            "through a global pooling, a flatten or a token read-out (or feeds a per-pixel "
            "classifier), so there is no automatic choice; name one with layer=. Candidates, "
            f"last first, with shapes: {candidates(model, shapes=True)}.")
    return ref
