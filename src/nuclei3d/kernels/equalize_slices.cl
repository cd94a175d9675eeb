// Equalization on a GPU (nuclei3d.equalize), three launches and no host round
// trip: the slice sums in two passes, then every voxel times its slice's factor,
// stack mean / slice mean (1 for an empty slice). Plain OpenCL on contiguous
// float32 (z, y, x) buffers, launched straight through pyopencl, without
// pyclesperanto's set-up of each launch. The sums add in the order of
// pyclesperanto's sum_x_projection and sum_y_projection, so they are the same to
// the bit (tests/test_equalize.py).

// rows[y][z] = sum over x of src[z][y][x], x in order
__kernel void row_sums(__global const float* src, __global float* rows, const int w)
{
  const int z = get_global_id(0), y = get_global_id(1);
  const int d = get_global_size(0), h = get_global_size(1);
  float sum = 0;
  for (int x = 0; x < w; x++) {
    sum = sum + src[(z * h + y) * w + x];
  }
  rows[y * d + z] = sum;
}

// sums[z] = sum over y of rows[y][z], y in order
__kernel void slice_sums(__global const float* rows, __global float* sums, const int h)
{
  const int z = get_global_id(0), d = get_global_size(0);
  float sum = 0;
  for (int y = 0; y < h; y++) {
    sum = sum + rows[y * d + z];
  }
  sums[z] = sum;
}

// dst = src times (mean of the slice sums) / (own slice sum); 1 for an empty slice
__kernel void multiply_by_slice_factor(
    __global const float* src,
    __global const float* sums,
    __global float* dst,
    const int depth
)
{
  const int x = get_global_id(0), y = get_global_id(1), z = get_global_id(2);
  const int w = get_global_size(0), h = get_global_size(1);
  float total = 0;
  for (int i = 0; i < depth; i++) {
    total += sums[i];
  }
  const float own = sums[z];
  const float factor = own > 0 ? (total / depth) / own : 1.0f;
  const int i = (z * h + y) * w + x;
  dst[i] = src[i] * factor;
}
