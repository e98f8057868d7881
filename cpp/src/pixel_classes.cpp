#include "cloudcov/pixel_classes.hpp"

#include <algorithm>
#include <cmath>

namespace cloudcov {

template <class T>
PixelCounts pixel_classes(const std::uint8_t* kmasked, T* psf, const std::uint8_t* circmask,
                          double flux, double thr, idx Np, std::uint8_t* not_good,
                          std::uint8_t* hidden, double flux_floor) {
    const idx n = Np * Np;
    // Stars fainter than flux_floor (1e4 ADU for DECaPS2) are masked as if they had that flux
    // (paper sec. 5.1).
    const double lim = flux < flux_floor ? thr / flux_floor : thr / flux;
    PixelCounts out;
    int nbad = 0;
    for (idx i = 0; i < n; ++i) {
        hidden[i] = static_cast<double>(psf[i]) > lim;
        not_good[i] = kmasked[i] || hidden[i] || circmask[i];
        nbad += not_good[i];
    }
    out.kcond0 = static_cast<int>(n) - nbad;
    if (out.kcond0 < 4 * Np) {
        out.dnt |= DNT_FEW_GOOD;
        nbad = 0;
        for (idx i = 0; i < n; ++i) {
            not_good[i] = kmasked[i] || hidden[i];
            nbad += not_good[i];
        }
    }
    if (static_cast<int>(n) - nbad < 4 * Np) {
        out.dnt |= DNT_RING_FORCED;
        for (idx r = 0; r < Np; ++r)
            for (idx c = 0; c < Np; ++c)
                if (r == 0 || c == 0 || r == Np - 1 || c == Np - 1) {
                    not_good[r * Np + c] = 0;
                    hidden[r * Np + c] = 0;
                }
    }
    const T pmin = *std::min_element(psf, psf + n);
    const T pmax = *std::max_element(psf, psf + n);
    const double psfr = static_cast<double>(pmin) / static_cast<double>(pmax);
    if (psfr < 0) {
        out.dnt |= DNT_PSF_NEG;
        for (idx i = 0; i < n; ++i) psf[i] = std::abs(psf[i]);
    }
    if (psfr < -1e-3) out.dnt |= DNT_PSF_NEG_1E3;
    if (psfr < -1e-1) out.dnt |= DNT_PSF_NEG_1E1;
    int kpred = 0, ngood = 0;
    for (idx i = 0; i < n; ++i) {
        kpred += hidden[i];
        ngood += !not_good[i];
    }
    out.kpred = kpred;
    out.kcond = ngood;
    return out;
}

template PixelCounts pixel_classes<float>(const std::uint8_t*, float*, const std::uint8_t*, double,
                                          double, idx, std::uint8_t*, std::uint8_t*, double);
template PixelCounts pixel_classes<double>(const std::uint8_t*, double*, const std::uint8_t*,
                                           double, double, idx, std::uint8_t*, std::uint8_t*, double);

}  // namespace cloudcov
