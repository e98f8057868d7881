// Per-star covariance and mean by lookup in the stack (mirrors CloudCovErr.jl `build_cov!`,
// src/perstar.jl; paper eq. 6 with the unbiased N/(N-1) normalisation of the code).
#pragma once
#include <cmath>
#include <utility>
#include <vector>

#include "cloudcov/shift_stack.hpp"
#include "cloudcov/views.hpp"

namespace cloudcov {

// Covariance of an Np x Np stamp whose pixel (0, 0) sits at boxcar-output pixel (r0, c0).
// Entries are looked up on demand: value(i, j) for flat stamp indices i, j (row-major).
template <class T>
struct StackCov {
    Stack<const T> stack;
    Image<const T> bimage;
    idx Np = 0;
    idx r0 = 0, c0 = 0;
    double N = 0;          // boxcar sample count wrow * wcol
    bool julia_compat = false;

    // Per-stamp lookup tables (call prepare() after setting the fields above).
    std::vector<const T*> blk;  // stack entries of each stamp pixel
    std::vector<T> bval;        // boxcar sum at each stamp pixel
    std::vector<int> prow, pcol;

    void prepare() {
        const idx n = Np * Np;
        blk.resize(n);
        bval.resize(n);
        prow.resize(n);
        pcol.resize(n);
        for (idx r = 0; r < Np; ++r)
            for (idx c = 0; c < Np; ++c) {
                const idx i = r * Np + c;
                blk[i] = stack.at(r0 + r, c0 + c);
                bval[i] = bimage(r0 + r, c0 + c);
                prow[i] = static_cast<int>(r);
                pcol[i] = static_cast<int>(c);
            }
    }

    // Covariance between flat stamp pixels i and j (symmetric).
    double value(idx i, idx j) const {
        if (j < i) std::swap(i, j);
        const idx s = shift_index(Np, prow[j] - prow[i], pcol[j] - pcol[i]);
        return combine(blk[i][s], bval[i], bval[j]);
    }

    // CloudCovErr.jl computes mean products and the difference in the working precision
    // T and rescales by N/(N-1) in double; the default does all of it in double.
    double combine(T S, T bi, T bj) const {
        if (julia_compat) {
            const T mu1mu2 = static_cast<T>(bi * bj) / static_cast<T>(N * N);
            const T t = static_cast<T>(S / static_cast<T>(N)) - mu1mu2;
            return static_cast<double>(static_cast<T>(static_cast<double>(t) * (N / (N - 1.0))));
        }
        const double mean_prod = static_cast<double>(bi) * static_cast<double>(bj) / (N * N);
        return (static_cast<double>(S) / N - mean_prod) * (N / (N - 1.0));
    }

    // Local mean of stamp pixel i: the boxcar mean (signed, paper eq. 4), or in
    // julia_compat mode CloudCovErr.jl v0.9.2's sqrt(mu_i * mu_i) = |mu_i|.
    double mean(idx i) const {
        const T b = bval[i];
        if (julia_compat) {
            const T m2 = static_cast<T>(b * b) / static_cast<T>(N * N);
            return static_cast<double>(static_cast<T>(std::sqrt(m2)));
        }
        return static_cast<double>(b) / N;
    }
};

// Fill the full Np^2 x Np^2 covariance (row-major) and the Np^2 mean vector.
template <class T>
void build_cov(const StackCov<T>& sc, T* cov, T* mu);

}  // namespace cloudcov
