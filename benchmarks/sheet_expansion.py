"""How long the sample sheet's expansion takes for many microscope files.

    python benchmarks/sheet_expansion.py --rows 10000 --files 1000 [--workdir DIR]

Writes `--files` tiny OME-Zarr files (2 time points each, bioio-ome-zarr's writer;
not timed) and a sheet of `--rows` rows naming them in turn, then times
``nuclei3d.formats.expand_sheet`` as the workflow runs it at parse time: first
with no kept layouts (every file's metadata read), then with the layouts kept in
the JSON file a second parse finds. Prints seconds and the stacks the rows became.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nuclei3d.formats import LayoutCache, expand_sheet


def write_files(folder, count):
    from bioio_ome_zarr.writers import OMEZarrWriter

    paths = []
    data = np.zeros((2, 1, 4, 8, 8), np.uint8)
    for i in range(count):
        path = folder / f"f{i:05d}.ome.zarr"
        if not path.exists():
            OMEZarrWriter(
                str(path),
                level_shapes=data.shape,
                dtype=data.dtype,
                zarr_format=2,
                axes_names=["t", "c", "z", "y", "x"],
                axes_types=["time", "channel", "space", "space", "space"],
                physical_pixel_size=[1.0, 1.0, 1.0, 0.2, 0.2],
            ).write_full_volume(data)
        paths.append(path)
    return paths


def expand(rows, cache_file):
    cache = LayoutCache(cache_file)
    begin = time.perf_counter()
    expanded = expand_sheet(rows, cache.layout)
    cache.save()
    return time.perf_counter() - begin, len(expanded)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.workdir or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        paths = write_files(root, args.files)
        rows = [
            {"sample": f"r{i:05d}", "image": str(paths[i % len(paths)])}
            for i in range(args.rows)
        ]
        cache_file = root / "layouts.json"
        cache_file.unlink(missing_ok=True)
        cold, stacks = expand(rows, cache_file)
        warm, _ = expand(rows, cache_file)
    result = {
        "rows": args.rows,
        "files": args.files,
        "stacks": stacks,
        "cold_s": round(cold, 3),
        "kept_layouts_s": round(warm, 3),
    }
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
