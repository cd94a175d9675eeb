import logging
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from nuclei3d.device import choose_device, cpu_runtime_rank, rank_devices
from nuclei3d.probe import NoWorkingDevice
from nuclei3d.probe import OpenCLDevice as D

POCL = "Portable Computing Language"
CPU = D(0, "pthread-cpu", POCL, "OpenCL 3.0 PoCL 3.1")
NVIDIA = [
    D(1, "NVIDIA H100", "NVIDIA CUDA", is_gpu=True, is_cpu=False),
    D(2, "NVIDIA H100 #2", "NVIDIA CUDA", is_gpu=True, is_cpu=False),
]
# One CPU behind three platforms, as on a CPU machine with Debian's PoCL, pip's
# PoCL and Intel's runtime.
DEBIAN_POCL = D(
    0, "pthread-skylake-avx512-Xeon", POCL, "OpenCL 3.0 PoCL 3.1+debian None+Asserts"
)
INTEL = D(1, "Intel(R) Xeon(R) Processor", "Intel(R) OpenCL", "OpenCL 3.1 LINUX")
PIP_POCL = D(2, "pthread-Xeon", POCL, "OpenCL 3.0 PoCL 3.0-rc2 Release LLVM 14.0.6")
THREE_RUNTIMES = [DEBIAN_POCL, INTEL, PIP_POCL]


def broken(device, error="error: unknown target CPU 'generic'"):
    return D(**{**vars(device), "error": error})


def test_first_gpu_wins_over_cpu():
    assert choose_device([CPU, *NVIDIA]).index == 1


def test_cpu_fallback_warns(caplog):
    with caplog.at_level(logging.WARNING):
        chosen = choose_device([CPU])
    assert chosen.name == "pthread-cpu"
    assert "no GPU visible" in caplog.text


def test_a_failed_device_is_never_chosen():
    assert choose_device([broken(NVIDIA[0]), CPU]).index == 0
    assert choose_device([broken(INTEL), PIP_POCL]).index == 2


def test_fastest_cpu_runtime_is_chosen_and_counts_as_one_device():
    claims = []

    def claim(n):
        claims.append(n)
        return 0

    chosen = choose_device(THREE_RUNTIMES, claim=claim)
    assert chosen.platform == "Intel(R) OpenCL"
    assert claims == []  # one CPU: nothing to lock among
    # Without Intel's runtime: the release build of PoCL.
    assert choose_device([PIP_POCL, DEBIAN_POCL]).index == 2
    assert choose_device([broken(PIP_POCL), DEBIAN_POCL]).index == 0
    assert choose_device([broken(DEBIAN_POCL), INTEL, PIP_POCL]).index == 1


def test_cpu_runtime_rank_orders_intel_then_release_then_newer_pocl():
    ranked = sorted([PIP_POCL, DEBIAN_POCL, INTEL], key=cpu_runtime_rank)
    assert ranked == [INTEL, PIP_POCL, DEBIAN_POCL]
    newer = D(3, "cpu-Xeon", POCL, "OpenCL 3.0 PoCL 5.0 Release LLVM 16.0.6")
    assert sorted([PIP_POCL, newer], key=cpu_runtime_rank) == [newer, PIP_POCL]


def test_devices_of_one_cpu_platform_stay_devices():
    """POCL_DEVICES="pthread pthread": one platform, two devices (stand-in GPUs)."""
    two = [D(0, "pthread-a", POCL, "PoCL 3.1"), D(1, "pthread-b", POCL, "PoCL 3.1")]
    ranked, peers = rank_devices([*two, INTEL])
    assert ranked == [INTEL] and peers == [INTEL]
    ranked, peers = rank_devices(two)
    assert peers == two


def test_nvidia_driver_already_applies_cuda_visible_devices():
    # The driver shows only the allocated GPU(s): the first NVIDIA device is it.
    chosen = choose_device([CPU, *NVIDIA], cuda_visible_devices="3")
    assert chosen.index == 1
    assert "CUDA_VISIBLE_DEVICES=3" in chosen.reason


def test_cuda_visible_devices_indexes_devices_of_other_platforms():
    two_cpus = [D(0, "pthread-a", POCL), D(1, "pthread-b", POCL)]
    assert choose_device(two_cpus, cuda_visible_devices="1").index == 1
    assert choose_device(two_cpus, cuda_visible_devices="0,1").index == 0


def test_cuda_visible_devices_never_names_a_second_platform_of_the_cpu():
    """The SLURM stand-in GPU 1 on a CPU with three runtimes: still the one CPU."""
    chosen = choose_device(THREE_RUNTIMES, cuda_visible_devices="1")
    assert chosen.platform == "Intel(R) OpenCL"
    chosen = choose_device([DEBIAN_POCL, broken(PIP_POCL)], cuda_visible_devices="1")
    assert chosen.index == 0


def test_pattern_narrows_the_devices_that_cuda_visible_devices_indexes():
    two_cpus = [D(0, "pthread-a", POCL), D(1, "pthread-b", POCL), INTEL]
    assert (
        choose_device(two_cpus, pattern="pthread", cuda_visible_devices="1").index == 1
    )
    assert (
        choose_device([CPU, *NVIDIA], pattern="pthread", cuda_visible_devices="0").index
        == 0
    )


def test_cuda_visible_devices_out_of_range_is_not_used(caplog):
    with caplog.at_level(logging.INFO):
        assert choose_device([CPU], cuda_visible_devices="5").index == 0
    assert "names no device" in caplog.text


def test_pattern_is_case_insensitive_and_matches_platforms():
    assert choose_device([CPU, *NVIDIA], pattern="PTHREAD").index == 0
    assert choose_device(THREE_RUNTIMES, pattern="portable").index == 2


def test_unknown_pattern_lists_devices():
    with pytest.raises(RuntimeError, match=r"'quadro'.*available: 'pthread-cpu on"):
        choose_device([CPU], pattern="quadro")


def test_pattern_matching_only_failed_devices_says_why():
    with pytest.raises(
        NoWorkingDevice,
        match=r"(?s)'pthread' failed a test build.*"
        r"pthread-Xeon on .*: error: unknown target CPU 'generic'",
    ):
        choose_device([broken(PIP_POCL), INTEL], pattern="pthread")


def test_no_device_says_how_to_get_one():
    with pytest.raises(
        NoWorkingDevice, match=r"(?s)no OpenCL platform.*pocl-opencl-icd"
    ):
        choose_device([])
    with pytest.raises(NoWorkingDevice, match=r"(?s)Tried:.*intel-opencl-rt=="):
        choose_device([broken(d) for d in THREE_RUNTIMES])


def test_select_device_makes_it_current(opencl_device):
    import pyclesperanto_prototype as cle

    assert cle.get_device().name == opencl_device.name


def test_claim_is_used_only_with_several_candidates():
    two = [D(0, "pthread-a", POCL), D(1, "pthread-b", POCL)]
    chosen = choose_device(two, claim=lambda n: n - 1)
    assert chosen.index == 1 and "locked for this job" in chosen.reason
    assert choose_device([CPU], claim=lambda n: 1 / 0).index == 0
    assert (
        choose_device(two, claim=lambda n: 1 / 0, cuda_visible_devices="0").index == 0
    )


HOLD_A_DEVICE = """
import sys, time
from nuclei3d.device import claim_free_device
print(claim_free_device(sys.argv[1], 2), flush=True)
time.sleep(60)
"""


def test_concurrent_claims_get_different_devices_and_die_with_their_process(tmp_path):
    from nuclei3d.device import claim_free_device

    holders = [
        subprocess.Popen(
            [sys.executable, "-c", HOLD_A_DEVICE, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        claimed = sorted(int(h.stdout.readline()) for h in holders)
        assert claimed == [0, 1]
        holders[1].send_signal(signal.SIGKILL)  # a crash must not leak its lock
        holders[1].wait()
        holders[0].kill()
        holders[0].wait()
        assert claim_free_device(tmp_path, 2, poll_seconds=0.01) in (0, 1)
    finally:
        for holder in holders:
            holder.kill()


def test_memory_check_passes_what_fits():
    from nuclei3d.device import GIB, check_device_memory

    check_device_memory(
        "a.tif",
        (100, 100, 100),
        buffers=8,
        device_memory=GIB,
        max_buffer=GIB // 4,
        device="GPU",
    )


@pytest.mark.parametrize(
    ("shape", "buffers", "is_gpu", "message"),
    [
        (
            (1000, 1000, 300),
            1,
            True,
            r"a\.tif: too large for X: .* 1\.12 GiB .*device=pocl",
        ),
        ((500, 500, 500), 8, True, r"holds about 8 of them \(3\.73 GiB of 2\.00 GiB\)"),
        ((1000, 1000, 300), 1, False, r"POCL_MEMORY_LIMIT"),
    ],
)
def test_memory_check_names_sizes_and_remedy(shape, buffers, is_gpu, message):
    from nuclei3d.device import GIB, DeviceMemoryError, check_device_memory

    with pytest.raises(DeviceMemoryError, match=message):
        check_device_memory(
            "a.tif",
            shape,
            buffers=buffers,
            device_memory=2 * GIB,
            max_buffer=GIB,
            device="X",
            is_gpu=is_gpu,
        )


def test_project_kernels_are_kept_per_thread(opencl_device):
    """A thread gets its own kernel object, the same one on every call."""
    import pyclesperanto_prototype as cle

    from nuclei3d.device import project_kernel

    context = cle.get_device().context
    first = project_kernel(context, "equalize_slices.cl", "row_sums")
    assert project_kernel(context, "equalize_slices.cl", "row_sums") is first
    assert project_kernel(context, "equalize_slices.cl", "slice_sums") is not first
    elsewhere = []
    thread = threading.Thread(
        target=lambda: elsewhere.append(
            project_kernel(context, "equalize_slices.cl", "row_sums")
        )
    )
    thread.start()
    thread.join()
    assert elsewhere[0] is not first
    assert elsewhere[0].function_name == first.function_name == "row_sums"


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32])
def test_push_float32_converts_like_cle_copy(opencl_device, dtype):
    import pyclesperanto_prototype as cle

    from nuclei3d.device import push_float32

    info = np.iinfo(dtype)
    array = np.random.default_rng(0).integers(
        max(info.min, -(2**20)), min(info.max, 2**20), (5, 6, 7)
    )
    array = array.astype(dtype)
    out = push_float32(array)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(cle.pull(out), array.astype(np.float32))


def test_large_pull_is_copied_in_slabs_whole(opencl_device):
    """Above 16 MiB the host copy runs in threads: every byte still arrives."""
    from nuclei3d.device import pull, push

    array = np.random.default_rng(1).integers(0, 255, (17, 1024, 1031), np.uint8)
    np.testing.assert_array_equal(pull(push(array)), array)
