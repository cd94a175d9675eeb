// Every voxel times its slice's factor from a 1 x depth list of factors
// (kernels/slice_factors.cl). Equalization on CPU devices (nuclei3d.equalize).
__kernel void multiply_by_factor_list(
    IMAGE_src_TYPE src,
    IMAGE_factors_TYPE factors,
    IMAGE_dst_TYPE dst
)
{
  const sampler_t sampler = CLK_NORMALIZED_COORDS_FALSE | CLK_ADDRESS_NONE | CLK_FILTER_NEAREST;

  const int x = get_global_id(0);
  const int y = get_global_id(1);
  const int z = get_global_id(2);
  const float factor = READ_factors_IMAGE(factors, sampler, POS_factors_INSTANCE(z, 0, 0, 0)).x;
  const float value = READ_src_IMAGE(src, sampler, POS_src_INSTANCE(x, y, z, 0)).x;
  WRITE_dst_IMAGE(dst, POS_dst_INSTANCE(x, y, z, 0), CONVERT_dst_PIXEL_TYPE(value * factor));
}
