#include "cloudcov/infill.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cloudcov/boxcar.hpp"
#include "cloudcov/errors.hpp"

namespace cloudcov {

std::vector<idx> infill_widths(idx w0, double widmult, int rounds) {
    require(w0 >= 1, "infill width must be >= 1");
    require(std::isfinite(widmult) && widmult > 0, "widmult must be finite and > 0");
    require(rounds >= 0 && rounds <= kMaxInfillRounds, "max_rounds must be in [0, 1000]");
    std::vector<idx> w;
    double cur = static_cast<double>(w0);
    for (int k = 0; k < rounds; ++k) {
        // Casting a width beyond the idx range (or inf) to idx is undefined behaviour.
        if (!(cur <= static_cast<double>(kMaxInfillWidth)))
            throw std::invalid_argument(
                "widx/widy, widmult, max_rounds: the infill window would grow beyond " +
                std::to_string(kMaxInfillWidth) + " pixels in round " + std::to_string(k) +
                "; lower widmult or max_rounds");
        w.push_back(static_cast<idx>(cur));
        cur *= widmult;
        cur = 2.0 * std::nearbyint((cur - 1.0) / 2.0) + 1.0;  // ties to even, as Julia round
    }
    return w;
}

template <class T>
InfillReport prelim_infill(const Image<const T>& image, const Image<const std::uint8_t>& mask,
                           idx wrow0, idx wcol0, double widmult, int max_rounds, int min_good,
                           const Image<T>& out, const Image<std::uint8_t>& still_masked) {
    require(wrow0 >= 1 && wcol0 >= 1 && wrow0 % 2 == 1 && wcol0 % 2 == 1,
            "infill widths must be odd and >= 1");
    require(max_rounds >= 0, "max_rounds must be >= 0");
    const idx nr = image.rows, nc = image.cols;
    const auto wr = infill_widths(wrow0, widmult, max_rounds);
    const auto wc = infill_widths(wcol0, widmult, max_rounds);
    idx pr = 0, pc = 0;
    for (int k = 0; k < max_rounds; ++k) {
        pr = std::max(pr, (wr[k] - 1) / 2);
        pc = std::max(pc, (wc[k] - 1) / 2);
    }
    // Every round's padding is allocated up front: bound the padded copies (the windows of
    // rounds never run count too). Limit: 4x the image or 2**22 pixels, whichever is larger.
    const double padded = static_cast<double>(nr + 2 * pr) * static_cast<double>(nc + 2 * pc);
    const double limit = std::max(4.0 * static_cast<double>(nr) * static_cast<double>(nc), 4194304.0);
    if (padded > limit)
        throw std::invalid_argument(
            "widx/widy, widmult, max_rounds: the infill windows would grow to " +
            std::to_string(2 * pr + 1) + " x " + std::to_string(2 * pc + 1) +
            " pixels, needing a reflect-padded copy of " + std::to_string(nr + 2 * pr) + " x " +
            std::to_string(nc + 2 * pc) +
            " pixels (more than max(4 x image, 2**22)); lower widmult or max_rounds");
    InfillReport rep;
    std::vector<idx> todo;   // the still-masked pixels, r * nc + c ascending
    {
        idx nmask = 0;
        for (idx r = 0; r < nr; ++r)
            for (idx c = 0; c < nc; ++c) nmask += mask(r, c) != 0;
        todo.reserve(static_cast<size_t>(nmask));
    }
    for (idx r = 0; r < nr; ++r)
        for (idx c = 0; c < nc; ++c) {
            const bool m = mask(r, c) != 0;
            out(r, c) = m ? T(0) : image(r, c);
            still_masked(r, c) = m;
            if (m) todo.push_back(r * nc + c);
        }
    if (todo.empty() || max_rounds == 0) {
        rep.unfilled = static_cast<idx>(todo.size());
        return rep;
    }
    // Reflect-padded copies: image with masked pixels zeroed, and the good-pixel indicator.
    const idx PR = nr + 2 * pr, PC = nc + 2 * pc;
    std::vector<T> pim(static_cast<size_t>(PR * PC));
    std::vector<std::uint8_t> pgood(static_cast<size_t>(PR * PC));
    std::vector<idx> src_col(static_cast<size_t>(PC));   // reflect_index once per column
    for (idx c = 0; c < PC; ++c) src_col[static_cast<size_t>(c)] = reflect_index(c - pc, nc);
    for (idx r = 0; r < PR; ++r) {
        const idx sr = reflect_index(r - pr, nr);
        for (idx c = 0; c < PC; ++c) {
            const idx sc = src_col[static_cast<size_t>(c)];
            const bool m = mask(sr, sc) != 0;
            pim[r * PC + c] = m ? T(0) : image(sr, sc);
            pgood[r * PC + c] = !m;
        }
    }
    // Each round steps the boxcar sums of the image and of the good-pixel indicator down the
    // rows together and runs the sums along a row only where it still holds a masked pixel,
    // as far as the last of them: the values used are those of the full-image boxcar, with no
    // image-size arrays of sums (whose first touch cost more than the sums).
    std::vector<double> sums(static_cast<size_t>(nc));
    std::vector<std::int64_t> counts(static_cast<size_t>(nc));
    for (int k = 0; k < max_rounds && !todo.empty(); ++k) {
        const idx hr = (wr[k] - 1) / 2, hc = (wc[k] - 1) / 2;
        const idx orr = pr - hr, occ = pc - hc;  // window origin in the padded arrays
        Image<const T> vim(pim.data() + orr * PC + occ, nr + 2 * hr, nc + 2 * hc, PC);
        Image<const std::uint8_t> vgood(pgood.data() + orr * PC + occ, nr + 2 * hr, nc + 2 * hc, PC);
        BoxcarRows<T> bsum(vim, wr[k], wc[k]);
        BoxcarRows<std::uint8_t, std::int64_t> bcount(vgood, wr[k], wc[k]);   // exact
        size_t t = 0, kept = 0;
        while (t < todo.size()) {
            const idx r = todo[t] / nc;
            size_t e = t;   // todo[t:e]: the masked pixels of row r
            while (e < todo.size() && todo[e] / nc == r) ++e;
            while (bsum.current() < r) {
                bsum.next();
                bcount.next();
            }
            const idx cend = todo[e - 1] % nc + 1;
            bsum.row(cend, sums.data());
            bcount.row(cend, counts.data());
            for (; t < e; ++t) {
                const idx c = todo[t] % nc;
                if (counts[static_cast<size_t>(c)] > min_good) {
                    out(r, c) = static_cast<T>(sums[static_cast<size_t>(c)] /
                                                       static_cast<double>(counts[static_cast<size_t>(c)]));
                    still_masked(r, c) = 0;
                } else {
                    todo[kept++] = todo[t];
                }
            }
        }
        todo.resize(kept);
        rep.rounds = k + 1;
        rep.last_wrow = wr[k];
        rep.last_wcol = wc[k];
    }
    rep.unfilled = static_cast<idx>(todo.size());
    return rep;
}

template InfillReport prelim_infill<float>(const Image<const float>&, const Image<const std::uint8_t>&,
                                           idx, idx, double, int, int, const Image<float>&,
                                           const Image<std::uint8_t>&);
template InfillReport prelim_infill<double>(const Image<const double>&, const Image<const std::uint8_t>&,
                                            idx, idx, double, int, int, const Image<double>&,
                                            const Image<std::uint8_t>&);

}  // namespace cloudcov
