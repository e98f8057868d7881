#include "cloudcov/simd.hpp"

#include <cstdlib>
#include <cstring>

namespace cloudcov {

#define CLOUDCOV_DECLARE_DOT(ns)                                \
    namespace ns {                                              \
    template <class W>                                          \
    W dot_fixed(const W* v, const W* w, int m);                 \
    }
CLOUDCOV_DECLARE_DOT(baseline)
#ifdef CLOUDCOV_HAVE_AVX2
CLOUDCOV_DECLARE_DOT(avx2)
#endif
#ifdef CLOUDCOV_HAVE_AVX512
CLOUDCOV_DECLARE_DOT(avx512)
#endif

namespace {

SimdLevel cap_level(SimdLevel best) {
    const char* env = std::getenv("CLOUDCOV_SIMD");
    if (env == nullptr) return best;
    if (std::strcmp(env, "baseline") == 0) return SimdLevel::baseline;
    if (std::strcmp(env, "avx2") == 0 && best == SimdLevel::avx512) return SimdLevel::avx2;
    return best;
}

SimdLevel best_level() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
#ifdef CLOUDCOV_HAVE_AVX512
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return SimdLevel::avx512;
#endif
#ifdef CLOUDCOV_HAVE_AVX2
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::avx2;
#endif
#endif
    return SimdLevel::baseline;
}

template <class W>
W dispatch_dot(const W* v, const W* w, int m) {
    switch (simd_level()) {   // its level is computed once
#ifdef CLOUDCOV_HAVE_AVX512
        case SimdLevel::avx512:
            return avx512::dot_fixed<W>(v, w, m);
#endif
#ifdef CLOUDCOV_HAVE_AVX2
        case SimdLevel::avx2:
            return avx2::dot_fixed<W>(v, w, m);
#endif
        default:
            return baseline::dot_fixed<W>(v, w, m);
    }
}

}  // namespace

SimdLevel simd_level() {
    static const SimdLevel level = cap_level(best_level());
    return level;
}

const char* simd_level_name(SimdLevel level) {
    switch (level) {
        case SimdLevel::avx512:
            return "avx512";
        case SimdLevel::avx2:
            return "avx2";
        default:
            return "baseline";
    }
}

float dot_fixed(const float* v, const float* w, int m) { return dispatch_dot<float>(v, w, m); }
double dot_fixed(const double* v, const double* w, int m) { return dispatch_dot<double>(v, w, m); }

}  // namespace cloudcov
