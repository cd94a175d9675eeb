"""nuclei3d.kernel_cache: one process at a time builds into a new cache."""

import threading

from nuclei3d.kernel_cache import build_lock, first_build


def runs_while_locked(folder, key):
    """Whether first_build(folder, key) gets through while another holds the lock."""
    done = threading.Event()

    def enter():
        with first_build(folder, key):
            done.set()

    with build_lock(folder):
        thread = threading.Thread(target=enter, daemon=True)
        thread.start()
        finished = done.wait(0.5)
    thread.join(5)
    return finished


def test_the_first_build_of_a_key_waits_for_the_lock_later_ones_do_not(tmp_path):
    assert not runs_while_locked(tmp_path, "segment on GPU")  # never built: waits
    with first_build(tmp_path, "segment on GPU"):
        pass
    assert runs_while_locked(tmp_path, "segment on GPU")  # built once: no wait
    assert not runs_while_locked(tmp_path, "segment on CPU")  # another key waits


def test_a_failed_first_build_is_not_marked(tmp_path):
    try:
        with first_build(tmp_path, "resample"):
            raise RuntimeError("build failed")
    except RuntimeError:
        pass
    assert not runs_while_locked(tmp_path, "resample")


def test_who_waited_while_the_first_built_goes_on_without_the_lock(tmp_path):
    inside, leave = threading.Event(), threading.Event()

    def second():
        with first_build(tmp_path, "segment"):
            inside.set()
            leave.wait(5)

    with first_build(tmp_path, "segment"):  # the first build holds the lock
        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        assert not inside.wait(0.3)  # the second waits for it
    assert inside.wait(5)  # built: the second goes on ...
    locked = threading.Event()

    def third():
        with build_lock(tmp_path):
            locked.set()

    threading.Thread(target=third, daemon=True).start()
    assert locked.wait(2)  # ... without holding the lock
    leave.set()
    thread.join(5)
