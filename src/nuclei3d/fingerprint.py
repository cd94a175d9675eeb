"""Fingerprints of library code, so a change to a stage's code reruns that stage.

Snakemake's ``code`` rerun trigger covers a rule's script but not the library the
script imports. Each rule puts the fingerprint of its stage module into its
``params``; editing the module changes the params, and Snakemake reruns the stage
and everything downstream.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["code_fingerprint"]

PACKAGE_DIR = Path(__file__).resolve().parent


def code_fingerprint(*modules):
    """SHA-256 (first 16 hex digits) of the source of the named library modules.

    A module's source includes the OpenCL kernels it names: every
    ``kernels/<name>.cl`` whose ``<name>`` occurs in the module's text (such as
    ``grow_labels`` in ``segment.py``), so editing a kernel reruns its stage.

    Parameters
    ----------
    *modules : str
        Module names inside this package, e.g. ``"segment"``, ``"io"``.

    Returns
    -------
    str

    Examples
    --------
    >>> len(code_fingerprint("segment", "io"))
    16
    """
    digest = hashlib.sha256()
    kernels = sorted((PACKAGE_DIR / "kernels").glob("*.cl"))
    for module in modules:
        source = (PACKAGE_DIR / f"{module}.py").read_bytes()
        digest.update(module.encode())
        digest.update(source)
        for kernel in kernels:
            if kernel.stem.encode() in source:
                digest.update(kernel.name.encode())
                digest.update(kernel.read_bytes())
    return digest.hexdigest()[:16]
