// Equalization factor of every z slice, from the slice sums (a 1 x depth image):
// factor[z] = mean over slices of the sums / sum[z]; 1 for an empty slice.
// Computed on the device (CPU devices: nuclei3d.equalize), no host round trip.
__kernel void slice_factors(
    IMAGE_sums_TYPE sums,
    IMAGE_dst_TYPE dst
)
{
  const sampler_t sampler = CLK_NORMALIZED_COORDS_FALSE | CLK_ADDRESS_NONE | CLK_FILTER_NEAREST;

  const int z = get_global_id(0);
  const int depth = GET_IMAGE_WIDTH(sums);
  double total = 0;
  for (int i = 0; i < depth; i++) {
    total += READ_sums_IMAGE(sums, sampler, POS_sums_INSTANCE(i, 0, 0, 0)).x;
  }
  const double own = READ_sums_IMAGE(sums, sampler, POS_sums_INSTANCE(z, 0, 0, 0)).x;
  const float factor = own > 0 ? (float)(total / depth / own) : 1.0f;
  WRITE_dst_IMAGE(dst, POS_dst_INSTANCE(z, 0, 0, 0), CONVERT_dst_PIXEL_TYPE(factor));
}
