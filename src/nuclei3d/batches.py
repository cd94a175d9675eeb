"""Which stacks one stage job handles: the sheet cut into stable batches.

Every per-stack stage runs as one job per batch. A stack's batch is a hash of its
name, so it depends on nothing else in the sheet: adding, removing or reordering
rows changes only the batches of the stacks concerned, and only those batches
rerun. Stacks that cannot run (a missing or unreadable file) or that failed in the
last run get a batch of their own, so that their failure does not take the rest
of a batch with it.
"""

from __future__ import annotations

import zlib

__all__ = ["batch_of", "make_batches"]


def batch_of(sample, count):
    """The hash batch of `sample` among `count`: ``"batch<k>"``, k zero-padded.

    Parameters
    ----------
    sample : str
    count : int
        Number of batches, at least 1.

    Returns
    -------
    str

    Examples
    --------
    >>> batch_of("stack_a", 1)
    'batch0'
    >>> batch_of("stack_a", 16) == batch_of("stack_a", 16)
    True
    """
    width = len(str(count - 1))
    return f"batch{zlib.crc32(sample.encode()) % count:0{width}d}"


def make_batches(samples, count, *, alone=()):
    """Cut `samples` into batches.

    Parameters
    ----------
    samples : iterable of str
        Sample names, in sheet order.
    count : int
        Number of hash batches; 0 gives every stack a batch of its own.
    alone : collection of str, optional
        Stacks that get a batch of their own whatever `count` says.

    Returns
    -------
    dict of str to list of str
        Batch name to its stacks, in sheet order; a stack alone in its batch
        gives the batch its name.

    Raises
    ------
    ValueError
        If a stack's name is also the name of a hash batch.

    Examples
    --------
    >>> make_batches(["a", "b", "c"], 0)
    {'a': ['a'], 'b': ['b'], 'c': ['c']}
    >>> make_batches(["a", "b", "c"], 1, alone={"b"})
    {'batch0': ['a', 'c'], 'b': ['b']}
    """
    batches, own = {}, []
    for sample in samples:
        if count == 0 or sample in alone:
            own.append(sample)
            name = sample
        else:
            name = batch_of(sample, count)
        batches.setdefault(name, []).append(sample)
    clash = [sample for sample in own if len(batches[sample]) > 1]
    if clash:
        raise ValueError(
            f"sample {clash[0]!r} has the name of a batch; rename it in the sheet"
        )
    return batches
