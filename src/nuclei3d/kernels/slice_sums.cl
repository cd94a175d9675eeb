// Sum of every z slice: one work item per slice adds up its voxels (in double).
// Equalization's first kernel (nuclei3d.equalize); pyclesperanto compiles a
// kernel file with the macros of one kernel's parameters, hence one per file.

__kernel void slice_sums(
    IMAGE_src_TYPE src,
    IMAGE_dst_TYPE dst
)
{
  const sampler_t sampler = CLK_NORMALIZED_COORDS_FALSE | CLK_ADDRESS_NONE | CLK_FILTER_NEAREST;

  const int z = get_global_id(0);
  double sum = 0;
  for (int y = 0; y < GET_IMAGE_HEIGHT(src); y++) {
    for (int x = 0; x < GET_IMAGE_WIDTH(src); x++) {
      sum += READ_src_IMAGE(src, sampler, POS_src_INSTANCE(x, y, z, 0)).x;
    }
  }
  WRITE_dst_IMAGE(dst, POS_dst_INSTANCE(z, 0, 0, 0), CONVERT_dst_PIXEL_TYPE(sum));
}
