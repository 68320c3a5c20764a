"""Scalable-Softmax (SSMax) for attention: an executable replication of Nakanishi (2025).

``from ssmax import ssmax`` gives the SSMax function (``ssmax.functional.ssmax``). It is loaded
lazily so that light tools (``python -m ssmax.notebooks``, the book's Sphinx hook) do not import
torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {"ssmax": "ssmax.functional", "query_scale": "ssmax.functional"}

if TYPE_CHECKING:  # pragma: no cover
    from ssmax.functional import query_scale, ssmax

__all__ = ["__version__", "ssmax", "query_scale"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ssmax' has no attribute {name!r}")
