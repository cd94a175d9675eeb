import json
import os
import subprocess
import sys

import numpy as np

from nuclei3d.pipeline import run_pipeline

from .conftest import REPO, in_ci


def test_pipeline_finds_most_demo_nuclei(opencl_device, tiny_stack):
    image, truth = tiny_stack
    result = run_pipeline(image, (1.0, 0.202, 0.202))
    assert result["labels"].shape == result["resampled"].shape == (30, 30, 30)
    found, true = int(result["labels"].max()), int(truth.max())
    assert 0.6 * true <= found <= 1.4 * true
    assert len(result["statistics"]) == found


def test_faster_pipeline_gives_the_labels_and_statistics_of_before(
    opencl_device, tiny_stack
):
    """Regression guard for speed-ups: the tiny demo's labels and statistics equal
    those of commit c5989ea (every stage pulled to the host, equalization factors
    on the host), stored in tests/data/tiny_demo_reference.npz."""
    reference = np.load(REPO / "tests/data/tiny_demo_reference.npz")
    result = run_pipeline(tiny_stack[0], (1.0, 0.202, 0.202), pull_intermediates=False)
    assert reference["labels"].max() > 2
    np.testing.assert_array_equal(result["labels"], reference["labels"])
    assert list(result["statistics"].columns) == reference["columns"].tolist()
    np.testing.assert_allclose(
        result["statistics"].to_numpy(dtype=float), reference["statistics"], rtol=1e-6
    )


CROSS_DEVICE = """
import json, sys
import numpy as np, pyclesperanto_prototype as cle
from nuclei3d.demo import make_demo_stack
from nuclei3d.pipeline import run_pipeline
from nuclei3d.probe import cl_devices, probe_devices

image, _ = make_demo_stack(shape=(40, 200, 200), n_nuclei=12, seed=11)
devices = cl_devices()
out = []
for probed in probe_devices():
    if not probed.works:
        continue
    device = devices[probed.index]
    cle.select_device(score_key=lambda d: d.int_ptr == device.int_ptr)
    result = run_pipeline(image, (1.0, 0.202, 0.202))
    i = len(out)
    np.save(f"{sys.argv[1]}/labels_{i}.npy", result["labels"])
    result["statistics"].to_csv(f"{sys.argv[1]}/statistics_{i}.csv", index=False)
    out.append(str(probed))
print(json.dumps(out))
"""


def test_every_working_opencl_device_gives_the_same_nuclei(tmp_path):
    """Every device that passes the probe, every CPU runtime included.

    The same nuclei everywhere: same count, F1 >= 0.99 (IoU 0.5) against the
    first device. Labels are identical voxel for voxel on PoCL's drivers and
    NVIDIA's; where a compiler's float rounding differs (Intel's CPU runtime), a
    few border voxels may go to the other nucleus (docs/gpu.md).
    """
    import pandas as pd

    from nuclei3d.validate import match_labels

    env = dict(os.environ, POCL_DEVICES="basic pthread")
    process = subprocess.run(
        [sys.executable, "-c", CROSS_DEVICE, str(tmp_path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    devices = json.loads(process.stdout.strip().splitlines()[-1])
    print("compared on:", devices)
    assert len(devices) >= 2
    if in_ci():
        # CI has pyopencl's PoCL, Debian's PoCL and Intel's runtime (.ci/run).
        assert any("Intel(R) OpenCL" in d for d in devices), devices
        assert sum("Portable Computing Language" in d for d in devices) >= 2
    reference = np.load(tmp_path / "labels_0.npy")
    assert reference.max() > 5
    table = pd.read_csv(tmp_path / "statistics_0.csv")
    for i in range(1, len(devices)):
        labels = np.load(tmp_path / f"labels_{i}.npy")
        differing = int((labels != reference).sum())
        print(f"{devices[i]}: {differing} voxels differ from {devices[0]}")
        assert labels.max() == reference.max(), devices[i]
        assert match_labels(reference, labels).f1 >= 0.99, devices[i]
        if differing == 0:
            pd.testing.assert_frame_equal(
                pd.read_csv(tmp_path / f"statistics_{i}.csv"), table, rtol=1e-4
            )
