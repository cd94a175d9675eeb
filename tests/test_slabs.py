import threading

import numpy as np

from nuclei3d.slabs import map_slabs, slab_count


def test_slabs_cover_the_axis_once_in_order():
    for depth, count in [(10, 3), (5, 8), (1, 4), (100, 7)]:
        slabs = map_slabs(lambda z: z, depth, count)
        assert len(slabs) == min(depth, count)
        covered = np.concatenate([np.arange(depth)[z] for z in slabs])
        np.testing.assert_array_equal(covered, np.arange(depth))


def test_one_slab_stays_in_the_calling_thread():
    caller = threading.get_ident()
    assert map_slabs(lambda z: threading.get_ident(), 10, 1) == [caller]
    ran_in = map_slabs(lambda z: threading.get_ident(), 10, 2)
    assert caller not in ran_in


def test_small_work_gets_one_slab():
    assert slab_count(10, 100) == 1
    assert 1 <= slab_count(1000, 100) <= 8
