"""Weight the channels: one small module per method, each registering itself.

Every module in this folder is imported here, and every :class:`~tf_gradcam.Explainer` subclass
with a ``name`` registers itself when its class is defined: ``METHODS`` (``tfg.METHODS``), the
``tfg.<ClassName>`` exports and ``tfg.explain(method=...)`` all read that registry. Adding a
method is adding one file (see ``docs/api.md``, "Adding a method").
"""

from __future__ import annotations

import importlib
import pkgutil

from tf_gradcam.engine.explainer import REGISTRY, Explainer, get_method  # noqa: F401

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

#: ``tfg.explain(method=...)`` names -> classes: the registry itself.
METHODS: dict[str, type[Explainer]] = REGISTRY

globals().update({cls.__name__: cls for cls in REGISTRY.values()})

__all__ = sorted(["METHODS", "get_method", *(cls.__name__ for cls in REGISTRY.values())])
