// Per-star covariance and mean by lookup in the stack (mirrors CloudCovErr.jl `build_cov!`,
// src/perstar.jl; paper eq. 6 with the unbiased N/(N-1) normalisation of the code).
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "cloudcov/prefetch.hpp"
#include "cloudcov/shift_stack.hpp"
#include "cloudcov/views.hpp"

namespace cloudcov {

// Whether each star's gather reads a compact copy of its stamp's stack entries
// (StackCov::compact_window) instead of the stack itself. Off by default: a benchmark
// (_core.set_gather_compact, benchmarks/bench_gather_layout.py) switches it on to measure what
// a sweep writing every star's entries contiguously could save the gather. Results never depend
// on it.
inline std::atomic<bool>& gather_compact() {
    static std::atomic<bool> on{false};
    return on;
}

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
    // For i <= j (flat order) the shift j - i has drow >= 0, and the address of its entry at
    // pixel i is at(0, r_i, c_i, 0) + drow * group_stride + dcol = base[i] + key[j] with
    // key = prow * group_stride + pcol: C(i, j) uses base[i][key[j]].
    std::vector<const T*> base;  // stack entries of pixel i, offset by -key[i]
    std::vector<idx> key;        // prow * group_stride + pcol
    std::vector<T> bval;         // boxcar sum at each stamp pixel
    std::vector<double> bd;      // the same in double
    double a_ = 0, c_ = 0;       // N/(N-1) / N and N/(N-1) / N^2
    idx gstride = 0;             // the step of base/key between shift rows (drow)

    void prepare() {
        const idx n = Np * Np;
        gstride = stack.group_stride();
        base.resize(n);
        key.resize(n);
        bval.resize(n);
        bd.resize(n);
        for (idx r = 0; r < Np; ++r)
            for (idx c = 0; c < Np; ++c) {
                const idx i = r * Np + c;
                key[i] = r * stack.group_stride() + c;
                base[i] = stack.at(0, r0 + r, c0 + c, 0) - key[i];
                bval[i] = bimage(r0 + r, c0 + c);
                bd[i] = static_cast<double>(bval[i]);
            }
        const double fac = N / (N - 1.0);
        a_ = fac / N;
        c_ = fac / (N * N);
    }

    // Benchmarks only (gather_compact()): copy the entries the gather reads into buf and read
    // them from there. Layout [ri][drow][ci][cj]: the entries of pixel (ri, ci) with the pixels
    // (ri + drow, cj) of a later (or, drow = 0, its own) stamp row, so that each shift row's
    // entries of a stamp row are one contiguous block of Np^2 values, and a pixel's entries for
    // one later row are Np contiguous values (as in the stack); Np^3 (Np + 1) / 2 values in
    // all. After the call, base[i][key[j]] and prefetch address buf. Not inlined, and its runs
    // copied by its own loop rather than calls to libc's memmove, so that a profiler counts the
    // copy in this symbol.
#if defined(__clang__)
    __attribute__((noinline, no_builtin("memcpy", "memmove")))
#elif defined(__GNUC__)
    __attribute__((noinline, optimize("no-tree-loop-distribute-patterns")))
#endif
    void compact_window(std::vector<T>& buf) {
        const idx G = Np * Np;
        buf.resize(static_cast<size_t>(G * (Np * (Np + 1) / 2)));
        idx blk = 0;   // start of stamp row ri's block
        for (idx ri = 0; ri < Np; ++ri) {
            for (idx ci = 0; ci < Np; ++ci) {
                const idx i = ri * Np + ci;
                const T* p = base[i] + key[i] - ci;   // pixel i's slot of column cj = 0, drow 0
                T* row = buf.data() + blk + ci * Np;
                // drow = 0: the pixels from i on (those before it are read at their own entries)
                for (idx cj = ci; cj < Np; ++cj) row[cj] = p[cj];
                for (idx d = 1; d < Np - ri; ++d) {
                    const T* __restrict src = p + d * gstride;
                    T* __restrict dst = row + d * G;
                    for (idx cj = 0; cj < Np; ++cj) dst[cj] = src[cj];
                }
            }
            for (idx ci = 0; ci < Np; ++ci)
                base[ri * Np + ci] = buf.data() + blk + ci * Np - ri * G;
            blk += (Np - ri) * G;
        }
        for (idx j = 0; j < G; ++j) key[j] = (j / Np) * G + j % Np;
        gstride = G;
    }

    // Covariance between flat stamp pixels i and j (symmetric).
    double value(idx i, idx j) const {
        if (j < i) std::swap(i, j);
        if (julia_compat) return combine(base[i][key[j]], bval[i], bval[j]);
        return a_ * static_cast<double>(base[i][key[j]]) - c_ * bd[i] * bd[j];
    }

    // Ask the memory system for the stack entries that fill(i, js > i) will read: for each
    // shift row drow, the Np contiguous slots of pixel i (the gather is bound by these
    // scattered reads from memory; issued two columns ahead they overlap with the columns
    // before). Into L2, not L1: a column's 50-100 lines are too many for L1's lines and miss
    // slots. On a Zen 4 EPYC (benchmarks/profile_perstar.py, one star ~1.3x a bare spotrf)
    // prefetcht1/t2 gave 1.28-1.33x, prefetcht0 1.42-1.44x, prefetchnta 1.40-1.47x and no
    // prefetch 1.58-1.61x; the distance (1 to 8 columns) changed nothing. Each line of a
    // window is asked for once, from the line holding its first entry (the gather's own time,
    // timed alone: 0.139-0.144x of a spotrf against 0.145-0.149x when the loop also asked for
    // the window's last byte; the first line alone: 0.37x, the hardware does not follow).
    void prefetch(idx i) const {
        if (!gather_prefetch().load(std::memory_order_relaxed)) return;
        const idx ri = i / Np, ci = i % Np;
        const T* p0 = base[i] + key[i] - ci;
        for (idx d = 0; d < Np - ri; ++d)
            prefetch_lines<2>(p0 + d * gstride, static_cast<size_t>(Np) * sizeof(T));
    }

    // out[b] = C(i, js[b]) for b < n, converted to W (the per-star gather). run_len[b]
    // (optional): js[b], js[b] + 1, ..., js[b] + run_len[b] - 1 are consecutive pixels of one
    // stamp row, whose stack entries are contiguous: such runs are gathered by a
    // vectorisable loop (the same arithmetic as element by element).
    template <class W>
    void fill(int i, const int* js, int n, W* out, const int* run_len = nullptr) const {
        if (julia_compat) {
            for (int b = 0; b < n; ++b) out[b] = static_cast<W>(value(i, js[b]));
            return;
        }
        const T* bi = base[i];
        const idx ki = key[i];
        const double ci = c_ * bd[i];
        const double a = a_;
        int b = 0;
        while (b < n) {
            const int j = js[b];
            if (j < i || run_len == nullptr) {   // mirrored entry (or no run table)
                const T S = j >= i ? bi[key[j]] : base[j][ki];
                out[b] = static_cast<W>(a * static_cast<double>(S) - ci * bd[j]);
                ++b;
                continue;
            }
            const int e = std::min(b + run_len[b], n);
            const T* __restrict src = bi + key[j];
            const double* __restrict bj = bd.data() + j;
            W* __restrict o = out + b;
            const int m = e - b;
            for (int t = 0; t < m; ++t)
                o[t] = static_cast<W>(a * static_cast<double>(src[t]) - ci * bj[t]);
            b = e;
        }
    }

    // out[b * stride] = C(is[b], j) for pixels is[b] > j, the value fill(is[b], {j}) gives,
    // read from pixel j's stack entries (contiguous along runs, see fill).
    template <class W>
    void fill_transposed(int j, const int* is, int n, W* out, size_t stride,
                         const int* run_len) const {
        if (julia_compat) {
            for (int b = 0; b < n; ++b) out[b * stride] = static_cast<W>(value(is[b], j));
            return;
        }
        const T* bj = base[j];
        const double dj = bd[j];
        const double a = a_, c = c_;
        int b = 0;
        while (b < n) {
            const int e = std::min(b + run_len[b], n);
            const T* __restrict src = bj + key[is[b]];
            const double* __restrict bi = bd.data() + is[b];
            for (int t = 0; t < e - b; ++t)
                out[(b + t) * stride] =
                    static_cast<W>(a * static_cast<double>(src[t]) - (c * bi[t]) * dj);
            b = e;
        }
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
