#include "cloudcov/boxcar.hpp"

#include <cstdint>
#include <vector>

#include "cloudcov/errors.hpp"

namespace cloudcov {

template <class In, class Out>
void boxcar_sum(const Image<const In>& in, idx wrow, idx wcol, const Image<Out>& out) {
    require(wrow >= 1 && wcol >= 1, "boxcar widths must be >= 1");
    require(in.rows >= wrow && in.cols >= wcol, "boxcar window larger than the image");
    require(out.rows == in.rows - wrow + 1 && out.cols == in.cols - wcol + 1,
            "boxcar output must be the valid region");
    const idx ncol = in.cols;
    std::vector<double> colsum(static_cast<size_t>(ncol), 0.0);
    for (idx r = 0; r < wrow; ++r) {
        const In* x = in.row(r);
        for (idx c = 0; c < ncol; ++c) colsum[c] += static_cast<double>(x[c]);
    }
    for (idx r0 = 0; r0 < out.rows; ++r0) {
        if (r0 > 0) {
            const In* add = in.row(r0 + wrow - 1);
            const In* sub = in.row(r0 - 1);
            for (idx c = 0; c < ncol; ++c)
                colsum[c] += static_cast<double>(add[c]) - static_cast<double>(sub[c]);
        }
        double t = 0.0;
        for (idx c = 0; c < wcol; ++c) t += colsum[c];
        Out* o = out.row(r0);
        o[0] = static_cast<Out>(t);
        for (idx c0 = 1; c0 < out.cols; ++c0) {
            t += colsum[c0 + wcol - 1] - colsum[c0 - 1];
            o[c0] = static_cast<Out>(t);
        }
    }
}

template void boxcar_sum<float, float>(const Image<const float>&, idx, idx, const Image<float>&);
template void boxcar_sum<double, double>(const Image<const double>&, idx, idx, const Image<double>&);
template void boxcar_sum<float, double>(const Image<const float>&, idx, idx, const Image<double>&);
template void boxcar_sum<std::uint8_t, std::int32_t>(const Image<const std::uint8_t>&, idx, idx,
                                                      const Image<std::int32_t>&);

}  // namespace cloudcov
