// Boxcar sums by running sums (mirrors CloudCovErr.jl `boxsmooth!`, src/cov.jl).
#pragma once
#include "cloudcov/views.hpp"

namespace cloudcov {

// out(r, c) = sum_{i < wrow, j < wcol} in(r + i, c + j) for the valid region:
// out must be (in.rows - wrow + 1) x (in.cols - wcol + 1). Sums run in double
// (column running sums updated row by row, then a running sum along each output row).
template <class In, class Out>
void boxcar_sum(const Image<const In>& in, idx wrow, idx wcol, const Image<Out>& out);

}  // namespace cloudcov
