// Gaussian-process-regression imputation of single pixels from their w x w neighbourhood
// (the model of astrofix, Zhang & Brandt 2021, AJ 162, 139, sec. 2, eqs. 3-5; written from the
// paper). In units of the pixel noise (sigma = 1), with the covariance function
//   SE: k(dr, dc) = a^2 exp(-(dr^2 / (2 h_r^2) + dc^2 / (2 h_c^2)))
//   OU: k(dr, dc) = a^2 exp(-sqrt(dr^2 / h_r^2 + dc^2 / h_c^2))
// and G the good pixels of the window (inside the image, not masked, the target excluded):
//   v = (K_GG + I)^-1 k_G        (one Cholesky solve, LAPACK ?potrf/?potrs; no inverse)
//   s = sum(v),  w = v / s       (astrofix normalises the kernel to unit sum)
//   mean = w^T x_G
//   var  = a^2 + 1 - k_G^T v (2 / s - 1 / s^2)
// var is the model variance of (measured value - mean) for the normalised estimator
// (E[(g - w^T g_G)^2] = k0 + 1 - 2 w^T k_G + w^T (K_GG + I) w with w = v / s).
// The all-good pattern (full window inside the image, no other bad pixel) uses weights
// computed once by the caller.
#pragma once
#include <cstdint>

#include "cloudcov/views.hpp"

namespace cloudcov {

struct GprKernel {
    int type = 0;         // 0 = squared exponential, 1 = Ornstein-Uhlenbeck
    double a = 1.0;       // amplitude (in units of the noise sigma)
    double h_row = 1.0;   // scales (pixels)
    double h_col = 1.0;
    double operator()(double dr, double dc) const;
};

struct GprOutputs {
    double* mean;          // n
    double* var;           // n, model variance (units of sigma^2)
    std::int32_t* ngood;   // n, good pixels used (0: none; mean/var NaN)
    std::uint8_t* full;    // n, 1 if the precomputed all-good weights were used
};

// For each target pixel (rows[i], cols[i]) of image x (bad != 0: not usable), the GPR mean
// and variance from the good pixels of its (2 half + 1)^2 window. w_full: (2 half + 1)^2
// normalised weights of the all-good pattern (centre 0), var_full its variance. Threads
// (0 = all cores); each pixel's result is independent of the thread count. Throws
// NumericalError if a Cholesky factorisation fails (K + I is positive definite for a > 0).
void gpr_impute(const Image<const double>& x, const Image<const std::uint8_t>& bad,
                const std::int64_t* rows, const std::int64_t* cols, idx n, int half,
                const GprKernel& kern, const double* w_full, double var_full,
                const GprOutputs& out, int nthreads);

}  // namespace cloudcov
