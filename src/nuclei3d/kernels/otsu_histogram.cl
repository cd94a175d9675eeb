// The histogram behind cle.threshold_otsu, in two launches and without a host
// round trip between them (nuclei3d.segment.threshold_otsu).
//
// pyclesperanto-prototype 0.24 finds the minimum and the maximum with three
// projections each, reading each back, then runs one work item per image row
// with a private 256-bin histogram. Here every work group reduces its share of
// the voxels in local memory and adds it to the result with one atomic per bin.
// The bin of a value is computed with cle's expression, character for character
// (histogram_3d_x.cl), so that the counts are the same.
//
// The minimum and maximum are kept as ordered integers: for IEEE floats,
// key(f) orders like f, so atomic_min / atomic_max on keys find them.
//
// Any local size works; min_max needs a power of two.

#define NUMBER_OF_HISTOGRAM_BINS 256

inline int float_key(float f) {
  const int i = as_int(f);
  return i >= 0 ? i : i ^ 0x7fffffff;
}

inline float key_float(int k) {
  return as_float(k >= 0 ? k : k ^ 0x7fffffff);
}

// range[0] and range[1] must start at INT_MAX and INT_MIN.
__kernel void min_max(__global const float *src, const uint n,
                      __global int *range, __local int *scratch) {
  const uint lid = get_local_id(0);
  const uint size = get_local_size(0);
  int low = INT_MAX, high = INT_MIN;
  for (uint i = get_global_id(0); i < n; i += get_global_size(0)) {
    const int k = float_key(src[i]);
    low = min(low, k);
    high = max(high, k);
  }
  scratch[lid] = low;
  scratch[size + lid] = high;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint step = size / 2; step > 0; step /= 2) {
    if (lid < step) {
      scratch[lid] = min(scratch[lid], scratch[lid + step]);
      scratch[size + lid] = max(scratch[size + lid], scratch[size + lid + step]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lid == 0) {
    atomic_min(&range[0], scratch[0]);
    atomic_max(&range[1], scratch[size]);
  }
}

// hist must start at 0; local_hist holds NUMBER_OF_HISTOGRAM_BINS counts.
__kernel void histogram(__global const float *src, const uint n,
                        __global const int *range, __global uint *hist,
                        __local uint *local_hist) {
  const uint lid = get_local_id(0);
  const uint size = get_local_size(0);
  const float minimum = key_float(range[0]);
  const float maximum = key_float(range[1]);
  const float range_ = maximum - minimum;
  for (uint bin = lid; bin < NUMBER_OF_HISTOGRAM_BINS; bin += size) {
    local_hist[bin] = 0;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint i = get_global_id(0); i < n; i += get_global_size(0)) {
    const float clr = src[i];
    uint indx_x;
    indx_x = convert_uint_sat(( (clr - minimum) * (float)(NUMBER_OF_HISTOGRAM_BINS - 1)) / range_ + 0.5);
    atomic_inc(&local_hist[min(indx_x, (uint)(NUMBER_OF_HISTOGRAM_BINS - 1))]);
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (uint bin = lid; bin < NUMBER_OF_HISTOGRAM_BINS; bin += size) {
    if (local_hist[bin] > 0) {
      atomic_add(&hist[bin], local_hist[bin]);
    }
  }
}
