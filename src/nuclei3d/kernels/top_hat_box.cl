// cle.top_hat_box on contiguous float32 (z, y, x) buffers (nuclei3d.background):
// a box minimum, then a box maximum, each as three passes along one axis, then
// the source minus that opening. Minimum, maximum and one subtraction round
// nothing, so the result is cle's to the bit; cle's clamp-to-edge sampler only
// repeats an edge voxel that is in the window anyway.

__kernel void box_extreme(__global const float *src, __global float *dst,
                          const int axis, const int radius, const int maximum) {
  const int x = get_global_id(0), y = get_global_id(1), z = get_global_id(2);
  const int w = get_global_size(0), h = get_global_size(1), d = get_global_size(2);
  const int n = axis == 0 ? w : (axis == 1 ? h : d);
  const int at = axis == 0 ? x : (axis == 1 ? y : z);
  const long stride = axis == 0 ? 1 : (axis == 1 ? (long)w : (long)w * h);
  const long i = ((long)z * h + y) * w + x;
  const int low = max(at - radius, 0) - at, high = min(at + radius, n - 1) - at;
  float res = src[i];
  for (int v = low; v <= high; v++) {
    const float value = src[i + v * stride];
    res = maximum ? max(res, value) : min(res, value);
  }
  dst[i] = res;
}

__kernel void subtract(__global const float *a, __global const float *b,
                       __global float *dst) {
  const size_t i = get_global_id(0);
  dst[i] = a[i] - b[i];
}
