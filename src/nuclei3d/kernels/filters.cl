// pyclesperanto-prototype 0.24's kernels for the steps of Voronoi-Otsu labeling,
// with the same arithmetic in the same order, on contiguous (z, y, x) buffers,
// launched straight through pyopencl (nuclei3d.segment): cle's Python set-up of
// a launch costs more than these kernels take on a demo stack. Neighbours
// outside the stack read the nearest edge voxel, as cle's clamp-to-edge
// sampler does. tests/test_segment.py compares each with cle's function.

#define IDX(x, y, z) (((long)(z) * h + (y)) * w + (x))

inline int clamp_to(int v, int n) { return v < 0 ? 0 : (v >= n ? n - 1 : v); }

// One axis of cle.gaussian_blur (gaussian_blur_separable_3d_x.cl, adapted by
// Robert Haase from Uwe Schmidt's FastFuse blur.cl): N taps, sigma s. cle works
// out every tap's weight in every voxel; gaussian_weights does it once per blur,
// with the same expression on the same device, and the sums take them in cle's
// order.
__kernel void gaussian_weights(__global float *weights, const int N,
                               const float s) {
  const int t = get_global_id(0);
  const int c = (N - 1) / 2;
  const int v = t - c;
  const float n = -2 * s * s;
  weights[t] = exp((v * v) / n);
}

__kernel void gaussian_blur_axis(__global const float *src, __global float *dst,
                                 __global const float *weights, const int dim,
                                 const int N) {
  const int i = get_global_id(0), j = get_global_id(1), k = get_global_id(2);
  const int w = get_global_size(0), h = get_global_size(1), d = get_global_size(2);
  const int c = (N - 1) / 2;
  float res = 0;
  float hsum = 0;
  for (int v = -c; v <= c; v++) {
    const float hv = weights[v + c];
    const int x = clamp_to(i + (dim == 0) * v, w);
    const int y = clamp_to(j + (dim == 1) * v, h);
    const int z = clamp_to(k + (dim == 2) * v, d);
    res += hv * src[IDX(x, y, z)];
    hsum += hv;
  }
  res /= hsum;
  dst[IDX(i, j, k)] = res;
}

// cle.detect_maxima_box with radius 0 (pyclesperanto's own
// _tier1/detect_maxima_3d_x.cl): 1 where a voxel is the first largest of its
// 3x3x3 box in cle's order (x, then y, then z). cle skips neighbours before the
// start of an axis and reads those past its end from the edge voxel, which was
// already read in that order and so never wins; here both are skipped.
__kernel void detect_maxima(__global const float *src, __global float *dst) {
  const int i = get_global_id(0), j = get_global_id(1), k = get_global_id(2);
  const int w = get_global_size(0), h = get_global_size(1), d = get_global_size(2);
  float localMax = src[IDX(i, j, k)] - 1;
  int mx = i, my = j, mz = k;
  for (int x = max(i - 1, 0); x <= min(i + 1, w - 1); x++) {
    for (int y = max(j - 1, 0); y <= min(j + 1, h - 1); y++) {
      for (int z = max(k - 1, 0); z <= min(k + 1, d - 1); z++) {
        const float value = src[IDX(x, y, z)];
        if (value > localMax) {
          localMax = value;
          mx = x;
          my = y;
          mz = z;
        }
      }
    }
  }
  dst[IDX(i, j, k)] = (mx == i && my == j && mz == k) ? 1 : 0;
}

// cle.greater_constant into a float32 image.
__kernel void greater_constant(__global const float *src, __global float *dst,
                               const float scalar) {
  const size_t i = get_global_id(0);
  dst[i] = src[i] > scalar ? 1 : 0;
}

// cle.copy of an integer image into a float32 one.
#define TO_FLOAT(type)                                                         \
  __kernel void type##_to_float(__global const type *src,                      \
                                __global float *dst) {                         \
    const size_t i = get_global_id(0);                                         \
    dst[i] = (float)src[i];                                                    \
  }
TO_FLOAT(uchar)
TO_FLOAT(char)
TO_FLOAT(ushort)
TO_FLOAT(short)
TO_FLOAT(uint)
TO_FLOAT(int)
