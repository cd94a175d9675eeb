#!/usr/bin/env bash
# Local multi-GPU check: the demo workflow over 8 stacks with --resources gpu=2 on a
# node with two GPUs; prints which device each job took and whether two jobs ever
# shared one. Usage: benchmarks/multi_gpu.sh [OUT_DIR]   (docs/gpu.md has a record)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$PWD/multi-gpu-out}
run=$(mktemp -d)
mkdir -p "$out" "$run/config"
cp "$repo/config/config.yaml" "$run/config/"
{
  printf 'sample\timage\tground_truth\n'
  for i in 01 02 03 04 05 06 07 08; do
    printf 'b%s\tresources/demo/b%s/image.tif\tresources/demo/b%s/ground_truth.tif\n' "$i" "$i" "$i"
  done
} > "$run/config/samples.tsv"
nvidia-smi -L | tee "$out/nvidia-smi-L.txt"
nvidia-smi --query-compute-apps=timestamp,gpu_bus_id,pid --format=csv,noheader -lms 100 \
  > "$out/nvidia-smi-apps.csv" 2>&1 &
sampler=$!
cd "$run"
start=$(date +%s)
python3 -m snakemake -s "$repo/Snakefile" --cores 16 --resources gpu=2 > "$out/run.log" 2>&1
echo "workflow wall: $(( $(date +%s) - start )) s"
kill "$sampler"
grep -h "OpenCL device" results/logs/*/*.log | cut -d' ' -f4- | sort | uniq -c
python3 - <<'PY'
import datetime, glob, itertools, re
stamp = lambda s: datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f")
jobs = []
for path in glob.glob("results/logs/*/*.log"):
    text = open(path).read()
    device = re.search(r"(\S+ \S+) INFO nuclei3d.device: OpenCL device (\d+)", text)
    end = re.search(r"(\S+ \S+) INFO [\w.]+: job ends", text)
    if device and end:
        jobs.append((int(device.group(2)), stamp(device.group(1)), stamp(end.group(1))))
for dev in sorted({d for d, _, _ in jobs}):
    spans = sorted((s, e) for d, s, e in jobs if d == dev)
    shared = sum(1 for (_, e1), (s2, _) in itertools.pairwise(spans) if s2 < e1)
    print(f"device {dev}: {len(spans)} jobs, times two jobs held it at once: {shared}")
both = sum(1 for (d1, s1, e1), (d2, s2, e2) in itertools.combinations(jobs, 2)
           if d1 != d2 and s1 < e2 and s2 < e1)
print("pairs of jobs running at the same time on different GPUs:", both)
PY
echo "processes seen per GPU bus id by nvidia-smi (samples):"
cut -d, -f2 "$out/nvidia-smi-apps.csv" | sort | uniq -c
