"""Where the package keeps its data: the repository's ``data/`` folder in a source checkout (an
editable install), a per-user folder when the package is installed anywhere else.

No torch here: the notebook tool and the results store both import it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def in_checkout() -> bool:
    """True if this package runs from a clone of the repository (``src/ssmax`` beside its
    ``pyproject.toml``), not from an installed copy in site-packages."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "src" / "ssmax").is_dir()


def user_data_dir() -> Path:
    """``$XDG_DATA_HOME/ssmax`` (default ``~/.local/share/ssmax``): where an installed package
    writes, instead of beside its own files in site-packages."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ssmax"


def data_dir() -> Path:
    """The repository's ``data/`` in a checkout, else `user_data_dir`."""
    return REPO_ROOT / "data" if in_checkout() else user_data_dir()


def folder_from_env(variable: str, default: Path) -> Path:
    """The folder an environment variable names, ``default`` if it is unset; set but empty is
    refused (it would silently mean the current directory)."""
    value = os.environ.get(variable)
    if value is None:
        return default
    if not value.strip():
        raise ValueError(f"{variable} is set but empty; unset it (default: {default}) or set it to a folder")
    return Path(value)
