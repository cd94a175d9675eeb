// The iterative steps of pyclesperanto's Voronoi-Otsu labeling, one launch per
// step and no host round trip between steps (nuclei3d.segment). Plain OpenCL on
// contiguous float32 (z, y, x) buffers; neighbours outside the stack read the
// nearest edge voxel, as pyclesperanto's clamp-to-edge sampler does.
//
// `flags[step]` is set when step `step` changed a voxel. A step whose previous
// step changed nothing returns at once: the loop it replaces stopped there, and
// both ping-pong buffers already hold that state. So any number of extra steps
// leaves the result as pyclesperanto's loop leaves it.

#define IDX(x, y, z) (((z) * h + (y)) * w + (x))

inline int clamp_to(int v, int n) { return v < 0 ? 0 : (v >= n ? n - 1 : v); }

// mode 0: nonzero_minimum_box (connected components)
// mode 1: onlyzero_overwrite_maximum_box, mode 2: ..._diamond (masked Voronoi)
__kernel void grow_labels(
    __global const float* src,
    __global float* dst,
    __global int* flags,
    const int step,
    const int mode
)
{
  if (step > 0 && flags[step - 1] == 0) {
    return;
  }
  const int x = get_global_id(0), y = get_global_id(1), z = get_global_id(2);
  const int w = get_global_size(0), h = get_global_size(1), d = get_global_size(2);
  const float original = src[IDX(x, y, z)];
  float found = original;
  if (mode == 0) {
    if (original != 0) {
      for (int dx = -1; dx <= 1; dx++) {
        for (int dy = -1; dy <= 1; dy++) {
          for (int dz = -1; dz <= 1; dz++) {
            const float value = src[IDX(clamp_to(x + dx, w), clamp_to(y + dy, h),
                                        clamp_to(z + dz, d))];
            if (value < found && value > 0) {
              found = value;
            }
          }
        }
      }
    }
  } else if (original == 0) {
    for (int dx = -1; dx <= 1; dx++) {
      for (int dy = -1; dy <= 1; dy++) {
        for (int dz = -1; dz <= 1; dz++) {
          if (mode == 2 && abs(dx) + abs(dy) + abs(dz) != 1) {
            continue;
          }
          const float value = src[IDX(clamp_to(x + dx, w), clamp_to(y + dy, h),
                                      clamp_to(z + dz, d))];
          if (value > found) {
            found = value;
          }
        }
      }
    }
  }
  if (found != original) {
    flags[step] = 1;
  }
  dst[IDX(x, y, z)] = found;
}

// Before the Voronoi growth: -1 outside the mask, the seed labels inside
// (cle.add_image_and_scalar(mask, -1), then cle.add_images with the seeds).
__kernel void voronoi_start(__global const float *mask,
                            __global const float *seeds, __global float *dst) {
  const size_t i = get_global_id(0);
  dst[i] = (mask[i] + -1.0f) + seeds[i];
}

// After it: the grown labels inside the mask, 0 outside, as uint labels
// (cle.mask into float32, then cle.mask into the uint32 label image);
// mask_labels16 writes uint16, for fewer than 65536 labels.
__kernel void mask_labels(__global const float *grown,
                          __global const float *mask, __global uint *labels) {
  const size_t i = get_global_id(0);
  labels[i] = mask[i] != 0 ? convert_uint_sat(grown[i]) : 0;
}

__kernel void mask_labels16(__global const float *grown,
                            __global const float *mask, __global ushort *labels) {
  const size_t i = get_global_id(0);
  labels[i] = mask[i] != 0 ? convert_ushort_sat(grown[i]) : 0;
}
