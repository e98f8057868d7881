// Good / hidden / ignored pixels of a star's stamp and the dnt quality bits
// (mirrors CloudCovErr.jl `gen_pix_mask`, src/perstar.jl).
#pragma once
#include <cstdint>

#include "cloudcov/views.hpp"

namespace cloudcov {

enum DntBits : int {
    DNT_FEW_GOOD = 1,        // kcond0 < 4 Np: radius cut dropped
    DNT_RING_FORCED = 2,     // still too few: outer ring of the stamp forced good
    DNT_GUARD = 4,           // condition-number guard changed the computation
    DNT_PSF_NEG = 8,         // PSF has negative pixels (|PSF| used)
    DNT_PSF_NEG_1E3 = 16,    // PSF min/max < -1e-3
    DNT_PSF_NEG_1E1 = 32,    // PSF min/max < -1e-1
    DNT_UNSTABLE = 64,       // no stable solution: float outputs NaN
};

struct PixelCounts {
    int kcond0 = 0, kcond = 0, kpred = 0, dnt = 0;
};

// kmasked, circmask: Np*Np flags (nonzero = masked upstream / beyond the radius).
// psf: Np*Np stamp, replaced in place by |psf| when it has negative pixels.
// Outputs: not_good (1 = not used for conditioning), hidden (1 = predicted).
// Hidden: psf > thr / max(flux, flux_floor) (CloudCovErr.jl: flux_floor = 1e4 ADU).
template <class T>
PixelCounts pixel_classes(const std::uint8_t* kmasked, T* psf, const std::uint8_t* circmask,
                          double flux, double thr, idx Np, std::uint8_t* not_good,
                          std::uint8_t* hidden, double flux_floor = 1e4);

}  // namespace cloudcov
