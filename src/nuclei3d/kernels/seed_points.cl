// The seeds of Voronoi-Otsu labeling as a list of points, and back
// (nuclei3d.segment.label_seed_points).
//
// A seed is a local maximum inside the foreground: a few per nucleus in a stack
// of millions of voxels. Their connected components are found on the host from
// the list, instead of by growing labels over the whole image.

// Flat index of every voxel where both images are non-zero (cle.binary_and);
// the order is arbitrary. count must start at 0; only the first `capacity`
// indices are written, count has them all.
__kernel void nonzero_in_both(__global const float *a, __global const float *b,
                              const uint n, __global uint *count,
                              __global uint *indices, const uint capacity) {
  const uint i = get_global_id(0);
  if (i < n && a[i] != 0 && b[i] != 0) {
    const uint slot = atomic_inc(count);
    if (slot < capacity) {
      indices[slot] = i;
    }
  }
}

// dst[indices[i]] = values[i]; dst is filled with 0 before.
__kernel void scatter(__global const uint *indices,
                      __global const float *values, const uint n,
                      __global float *dst) {
  const uint i = get_global_id(0);
  if (i < n) {
    dst[indices[i]] = values[i];
  }
}
