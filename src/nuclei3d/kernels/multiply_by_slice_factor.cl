// Every voxel times its slice's factor, mean of the slice sums / own slice sum
// (1 for an empty slice): stack mean / slice mean. The slice sums (a 1 x depth
// image) come from two projections (nuclei3d.equalize); each work item works out
// its factor, so there is no round trip to the host.

__kernel void multiply_by_slice_factor(
    IMAGE_src_TYPE src,
    IMAGE_sums_TYPE sums,
    IMAGE_dst_TYPE dst
)
{
  const sampler_t sampler = CLK_NORMALIZED_COORDS_FALSE | CLK_ADDRESS_NONE | CLK_FILTER_NEAREST;

  const int x = get_global_id(0);
  const int y = get_global_id(1);
  const int z = get_global_id(2);
  const int depth = GET_IMAGE_WIDTH(sums);
  float total = 0;
  for (int i = 0; i < depth; i++) {
    total += READ_sums_IMAGE(sums, sampler, POS_sums_INSTANCE(i, 0, 0, 0)).x;
  }
  const float own = READ_sums_IMAGE(sums, sampler, POS_sums_INSTANCE(z, 0, 0, 0)).x;
  const float factor = own > 0 ? (total / depth) / own : 1.0f;
  const float value = READ_src_IMAGE(src, sampler, POS_src_INSTANCE(x, y, z, 0)).x;
  WRITE_dst_IMAGE(dst, POS_dst_INSTANCE(x, y, z, 0), CONVERT_dst_PIXEL_TYPE(value * factor));
}
