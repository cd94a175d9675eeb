#!/usr/bin/env bash
# The device probe on a GPU node: NVIDIA's OpenCL beside the node's PoCL.
# Prints what the probe found, the choice a job makes, the same with PoCL's
# compiler broken, the kept verdicts' cost, and the cross-device test.
set -uo pipefail
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
cache=$(mktemp -d)
nvidia-smi -L
echo "== first probe (no kept verdicts)"
/usr/bin/time -f "%e s wall" python3 -m nuclei3d.probe --cache-dir "$cache"
echo "== second probe (kept verdicts)"
/usr/bin/time -f "%e s wall" python3 -m nuclei3d.probe --cache-dir "$cache"
echo "== PoCL's compiler broken (POCL_EXTRA_BUILD_FLAGS=-no-such-flag)"
POCL_EXTRA_BUILD_FLAGS=-no-such-flag python3 -m nuclei3d.probe --cache-dir "$cache"
echo "== config device: pthread, PoCL broken"
POCL_EXTRA_BUILD_FLAGS=-no-such-flag python3 -m nuclei3d.probe --cache-dir "$cache" --device pthread
echo "rc=$?"
echo "== CUDA_VISIBLE_DEVICES=0"
CUDA_VISIBLE_DEVICES=0 python3 -m nuclei3d.probe --cache-dir "$cache"
echo "== cross-device test"
POCL_DEVICES="basic pthread" python3 -m pytest -q -s -p no:cacheprovider \
  tests/test_pipeline.py -k every_working 2>&1 | grep -v Warning
