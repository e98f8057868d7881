#include "cloudcov/boxcar.hpp"

#include <cstdint>

#include "cloudcov/errors.hpp"

namespace cloudcov {

template <class In, class Out>
void boxcar_sum(const Image<const In>& in, idx wrow, idx wcol, const Image<Out>& out) {
    require(wrow >= 1 && wcol >= 1, "boxcar widths must be >= 1");
    require(in.rows >= wrow && in.cols >= wcol, "boxcar window larger than the image");
    require(out.rows == in.rows - wrow + 1 && out.cols == in.cols - wcol + 1,
            "boxcar output must be the valid region");
    BoxcarRows<In> b(in, wrow, wcol);
    for (idx r0 = 0; r0 < out.rows; ++r0) {
        if (r0 > 0) b.next();
        b.row(out.cols, out.row(r0));
    }
}

template void boxcar_sum<float, float>(const Image<const float>&, idx, idx, const Image<float>&);
template void boxcar_sum<double, double>(const Image<const double>&, idx, idx, const Image<double>&);
template void boxcar_sum<float, double>(const Image<const float>&, idx, idx, const Image<double>&);
template void boxcar_sum<std::uint8_t, std::int32_t>(const Image<const std::uint8_t>&, idx, idx,
                                                      const Image<std::int32_t>&);

}  // namespace cloudcov
