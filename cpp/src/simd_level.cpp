#include "cloudcov/simd_level.hpp"

#include <cstdlib>
#include <cstring>

namespace cloudcov {

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

}  // namespace

SimdLevel simd_level() {
    static const SimdLevel level = cap_level(best_level());
    return level;
}

const char* simd_level_name() {
    switch (simd_level()) {
        case SimdLevel::avx512:
            return "avx512";
        case SimdLevel::avx2:
            return "avx2";
        default:
            return "baseline";
    }
}

}  // namespace cloudcov
