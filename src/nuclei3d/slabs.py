"""Run NumPy work over z slabs of a large stack in threads.

NumPy releases the GIL in its copy, comparison, sort and reduction loops, so a
stack split along z is worked on by several cores at once. Small stacks stay in
the calling thread: starting threads costs more than it saves there.
"""

from __future__ import annotations

import itertools
import os

import numpy as np

__all__ = ["map_slabs", "slab_count"]

MAX_THREADS = 8


def slab_count(size, threshold):
    """Slabs for a stack of `size` (items or bytes): 1 below `threshold`, else up
    to ``MAX_THREADS`` of the CPUs this process may use.

    Examples
    --------
    >>> slab_count(10, threshold=100)
    1
    """
    if size < threshold:
        return 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return max(1, min(MAX_THREADS, usable))


def map_slabs(function, depth, count):
    """``[function(z) for z in slabs]`` over `count` slices of ``range(depth)``.

    Parameters
    ----------
    function : callable
        Takes a ``slice`` of z.
    depth : int
        Length of the axis split.
    count : int
        Number of slabs (at most `depth`), run in as many threads; 1 runs in the
        calling thread.

    Returns
    -------
    list
        The results, in z order.

    Examples
    --------
    >>> map_slabs(lambda z: (z.start, z.stop), 10, 3)
    [(0, 3), (3, 6), (6, 10)]
    """
    count = max(1, min(count, depth))
    bounds = np.linspace(0, depth, count + 1).astype(int)
    slabs = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    if count == 1:
        return [function(slabs[0])]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(function, slabs))
