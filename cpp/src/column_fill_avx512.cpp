// AVX-512 kernel of fill_columns_simd (see column_fill.hpp). Compiled with AVX-512 flags and
// -ffp-contract=off; it uses no template or inline function shared with other translation
// units (only intrinsics and builtins), so no AVX-512 code can stand in for baseline code.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "cloudcov/column_fill.hpp"

namespace cloudcov {
namespace avx512 {

namespace {

// The conversions with an all-ones zero mask: the plain intrinsics start from an undefined
// register, which GCC 12 reports as maybe-uninitialized (the build treats warnings as errors).
constexpr __mmask8 kAll = 0xff;

inline void prefetch_line(const void* p) {
    asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
}

// Ask for the stack lines that column a (pixel i) will read, as StackCov::prefetch: in each
// stamp row rj >= ri, the Np entries at base[i] + rj * gs. (Only the span the column writes
// was measured slower: 1.22-1.25x against 1.20-1.22x a bare spotrf per star.)
inline void prefetch_pixel(const ColumnFill& f, int a) {
    const int i = a < f.kc ? f.good[a] : f.hidden[a - f.kc];
    const std::int64_t len = static_cast<std::int64_t>(f.Np) * 4;
    for (int rj = i / f.Np; rj < f.Np; ++rj) {
        const char* p = reinterpret_cast<const char*>(f.base[i] + rj * f.gs);
        for (std::int64_t off = 0; off < len; off += 64) prefetch_line(p + off);
        prefetch_line(p + len - 1);
    }
}

}  // namespace

void fill_columns(const ColumnFill& f) {
    const int Np = f.Np, kc = f.kc, kp = f.kp, n = kc + kp;
    const __m512d av = _mm512_set1_pd(f.a), cb = _mm512_set1_pd(f.c);
    alignas(64) float spill[16];
    int hp = 0;   // first hidden position whose pixel follows the current good pixel
    int gp = 0;   // first good position whose pixel follows the current hidden pixel
    for (int a = 0; a < n; ++a) {
        const bool good = a < kc;
        const int i = good ? f.good[a] : f.hidden[a - kc];
        if (f.prefetch && a + 2 < n) prefetch_pixel(f, a + 2);
        const int ri = i / Np, ci = i % Np;
        float* col = f.A + static_cast<std::size_t>(a) * n;
        float* og = col + a + 1;   // good pixels after i (good column)
        float* oh = col + a + 1;   // hidden pixels after i
        if (good) {
            while (hp < kp && f.hidden[hp] < i) ++hp;
            oh = col + kc + hp;
        } else {
            while (gp < kc && f.good[gp] < i) ++gp;
        }
        // hidden column: the good pixels g after i go to row a of column g (C(g, i), the
        // value column g's own gather gives: a S - (c bd[g]) bd[i], from pixel i's entries)
        float* ot = f.A + static_cast<std::size_t>(gp) * n + a;
        const float* bi = f.base[i];
        const __m512d cv = _mm512_set1_pd(f.c * f.bd[i]), dv = _mm512_set1_pd(f.bd[i]);
        // pixels after i: in its own row the columns after ci, then every later row
        const std::uint64_t after = ci >= 63 ? 0 : ~((std::uint64_t{2} << ci) - 1);
        for (int rj = ri; rj < Np; ++rj) {
            std::uint64_t mg = f.good_rows[rj], mh = f.hidden_rows[rj];
            if (rj == ri) {
                mg &= after;
                mh &= after;
            }
            if ((mg | mh) == 0) continue;
            const float* S = bi + rj * f.gs;
            const double* B = f.bd + static_cast<std::ptrdiff_t>(rj) * Np;
            // 16 lanes at a time from the first pixel written to the last
            const std::uint64_t m = mg | mh;
            const int lo = __builtin_ctzll(m), hi = 63 - __builtin_clzll(m);
            for (int c0 = lo; c0 <= hi; c0 += 16) {
                const __mmask16 m16 = static_cast<__mmask16>(m >> c0);
                const __mmask16 g16 = static_cast<__mmask16>(mg >> c0), h16 = static_cast<__mmask16>(mh >> c0);
                const __m512 sf = _mm512_maskz_loadu_ps(m16, S + c0);
                const __m512d s0 = _mm512_mul_pd(av, _mm512_maskz_cvtps_pd(kAll, _mm512_maskz_extractf32x8_ps(kAll, sf, 0)));
                const __m512d s1 = _mm512_mul_pd(av, _mm512_maskz_cvtps_pd(kAll, _mm512_maskz_extractf32x8_ps(kAll, sf, 1)));
                const __m512d b0 = _mm512_maskz_loadu_pd(static_cast<__mmask8>(m16), B + c0);
                const __m512d b1 = _mm512_maskz_loadu_pd(static_cast<__mmask8>(m16 >> 8), B + c0 + 8);
                if (h16 || (good && g16)) {   // C(i, j) = a S - (c bd[i]) bd[j]
                    const __m256 v0 = _mm512_maskz_cvtpd_ps(kAll, _mm512_sub_pd(s0, _mm512_mul_pd(cv, b0)));
                    const __m256 v1 = _mm512_maskz_cvtpd_ps(kAll, _mm512_sub_pd(s1, _mm512_mul_pd(cv, b1)));
                    const __m512 v = _mm512_insertf32x8(_mm512_castps256_ps512(v0), v1, 1);
                    if (good && g16) {
                        const int k = __builtin_popcount(g16);
                        _mm512_mask_storeu_ps(og, static_cast<__mmask16>((1u << k) - 1), _mm512_maskz_compress_ps(g16, v));
                        og += k;
                    }
                    if (h16) {
                        const int k = __builtin_popcount(h16);
                        _mm512_mask_storeu_ps(oh, static_cast<__mmask16>((1u << k) - 1), _mm512_maskz_compress_ps(h16, v));
                        oh += k;
                    }
                }
                if (!good && g16) {   // C(g, i) = a S - (c bd[g]) bd[i]
                    const __m256 t0 = _mm512_maskz_cvtpd_ps(kAll, _mm512_sub_pd(s0, _mm512_mul_pd(_mm512_mul_pd(cb, b0), dv)));
                    const __m256 t1 = _mm512_maskz_cvtpd_ps(kAll, _mm512_sub_pd(s1, _mm512_mul_pd(_mm512_mul_pd(cb, b1), dv)));
                    const __m512 t = _mm512_insertf32x8(_mm512_castps256_ps512(t0), t1, 1);
                    _mm512_store_ps(spill, _mm512_maskz_compress_ps(g16, t));
                    const int k = __builtin_popcount(g16);
                    for (int u = 0; u < k; ++u) ot[static_cast<std::size_t>(u) * n] = spill[u];
                    ot += static_cast<std::size_t>(k) * n;
                }
            }
        }
        if (f.colsum != nullptr && good) {
            // as condition_attempt: 8 partial sums over blocks of 8 from a + 1, the rest into
            // the first; each |C(b, a)| also added to colsum[b]
            double* cs = f.colsum;
            __m512d part = _mm512_setzero_pd();
            int b = a + 1;
            for (; b + 8 <= kc; b += 8) {
                const __m512d v = _mm512_abs_pd(_mm512_maskz_cvtps_pd(kAll, _mm256_loadu_ps(col + b)));
                part = _mm512_add_pd(part, v);
                _mm512_storeu_pd(cs + b, _mm512_add_pd(_mm512_loadu_pd(cs + b), v));
            }
            alignas(64) double p[8];
            _mm512_store_pd(p, part);
            for (; b < kc; ++b) {
                const double v = __builtin_fabs(static_cast<double>(col[b]));
                p[0] += v;
                cs[b] += v;
            }
            cs[a] += __builtin_fabs(static_cast<double>(col[a])) + ((p[0] + p[1]) + (p[2] + p[3])) +
                     ((p[4] + p[5]) + (p[6] + p[7]));
        }
    }
}

}  // namespace avx512
}  // namespace cloudcov
