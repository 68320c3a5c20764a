"""pytest at the repository root (``testpaths``: tests and notebooks).

``pytest`` runs the unit and integration tests; nbval collects the notebooks only with
``--nbval`` (or ``--nbval-lax``), so ``pytest --nbval``, the command the book promises for CI,
checks every notebook too. Notebooks are then checked on this interpreter (as
``--nbval-current-env``) and with numpy's portable math, as ``python -m ssmax.notebooks execute``
runs them (`ssmax.notebooks.portable_numpy_env`).
"""

from __future__ import annotations

import os


def pytest_configure(config) -> None:
    if getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False):
        from ssmax.notebooks import portable_numpy_env

        if not getattr(config.option, "nbval_kernel_name", None):
            config.option.nbval_current_env = True
        os.environ.update(portable_numpy_env())
