// Boxcar sums by running sums (mirrors CloudCovErr.jl `boxsmooth!`, src/cov.jl).
#pragma once
#include <algorithm>
#include <vector>

#include "cloudcov/views.hpp"

namespace cloudcov {

// out(r, c) = sum_{i < wrow, j < wcol} in(r + i, c + j) for the valid region:
// out must be (in.rows - wrow + 1) x (in.cols - wcol + 1). Sums run in double
// (column running sums updated row by row, then a running sum along each output row;
// see BoxcarRows).
template <class In, class Out>
void boxcar_sum(const Image<const In>& in, idx wrow, idx wcol, const Image<Out>& out);

// The boxcar sums of boxcar_sum one output row at a time, for callers that need only some
// rows or the first columns of a row (the preliminary infill): the column running sums are
// advanced through every row (next()), the running sum along a row is run only on request
// (row()) and only as far as asked. Every value is the one boxcar_sum gives. Acc: the type of
// the running sums, double as in boxcar_sum, or a 64-bit integer for integer input (exact,
// so the same values as in double wherever those are exact, i.e. below 2**53).
template <class In, class Acc = double>
class BoxcarRows {
  public:
    // Positioned at output row 0. Requires 1 <= wrow <= in.rows and 1 <= wcol <= in.cols.
    BoxcarRows(const Image<const In>& in, idx wrow, idx wcol)
        : in_(in), wrow_(wrow), wcol_(wcol), colsum_(static_cast<size_t>(in.cols), Acc(0)) {
        for (idx r = 0; r < wrow; ++r) {
            const In* x = in.row(r);
            for (idx c = 0; c < in.cols; ++c) colsum_[c] += static_cast<Acc>(x[c]);
        }
    }
    idx rows() const { return in_.rows - wrow_ + 1; }
    idx cols() const { return in_.cols - wcol_ + 1; }
    idx current() const { return r0_; }
    // Advance the column sums to the next output row.
    void next() {
        ++r0_;
        const In* add = in_.row(r0_ + wrow_ - 1);
        const In* sub = in_.row(r0_ - 1);
        Acc* cs = colsum_.data();
        for (idx c = 0; c < in_.cols; ++c) cs[c] += static_cast<Acc>(add[c]) - static_cast<Acc>(sub[c]);
    }
    // o[c] = out(current(), c) for c < cend (cend <= cols()).
    template <class Out>
    void row(idx cend, Out* o) const {
        if (cend <= 0) return;
        const Acc* cs = colsum_.data();
        Acc t = 0;
        for (idx c = 0; c < wcol_; ++c) t += cs[c];
        o[0] = static_cast<Out>(t);
        for (idx c0 = 1; c0 < cend; ++c0) {
            t += cs[c0 + wcol_ - 1] - cs[c0 - 1];
            o[c0] = static_cast<Out>(t);
        }
    }

  private:
    Image<const In> in_;
    idx wrow_, wcol_, r0_ = 0;
    std::vector<Acc> colsum_;
};

}  // namespace cloudcov
