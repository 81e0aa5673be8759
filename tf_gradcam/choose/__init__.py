"""Choose what to explain: which tensor (``tensors``), which score (``scores``: logits under a
softmax, what the head is) and which class per sample (``targets``: the one resolver)."""

from tf_gradcam._compat import check_backend

check_backend()
