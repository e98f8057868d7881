// Preliminary infill of masked pixels by boxcar means of the good pixels with growing
// windows (mirrors CloudCovErr.jl `prelim_infill!`, src/preprocess.jl; paper sec. 2.5).
#pragma once
#include <cstdint>
#include <vector>

#include "cloudcov/views.hpp"

namespace cloudcov {

// Bounds on the infill schedule (checked by infill_widths / prelim_infill).
constexpr int kMaxInfillRounds = 1000;
constexpr idx kMaxInfillWidth = idx(1) << 31;

// Window widths used by round 0, 1, ...: w -> 2 * round_half_even((w * widmult - 1) / 2) + 1.
std::vector<idx> infill_widths(idx w0, double widmult, int rounds);

// numpy 'reflect' index (edge pixel not repeated), valid for any i and n >= 1.
inline idx reflect_index(idx i, idx n) {
    if (n == 1) return 0;
    const idx period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

struct InfillReport {
    int rounds = 0;       // rounds run
    idx last_wrow = 0, last_wcol = 0;  // widths of the last round run
    idx unfilled = 0;     // masked pixels still without a value (left to the caller)
};

// out: copy of image with masked pixels replaced by the boxcar mean of the good pixels in a
// (wrow x wcol) window centred on them (reflective padding), for the first window that holds
// more than min_good good pixels; windows grow by widmult for up to max_rounds rounds.
// still_masked (output): 1 where no round succeeded (value left as 0 in out).
template <class T>
InfillReport prelim_infill(const Image<const T>& image, const Image<const std::uint8_t>& mask,
                           idx wrow0, idx wcol0, double widmult, int max_rounds, int min_good,
                           const Image<T>& out, const Image<std::uint8_t>& still_masked);

}  // namespace cloudcov
