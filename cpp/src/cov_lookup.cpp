#include "cloudcov/cov_lookup.hpp"

namespace cloudcov {

template <class T>
void build_cov(const StackCov<T>& sc_in, T* cov, T* mu) {
    StackCov<T> sc = sc_in;
    sc.prepare();
    const idx n = sc.Np * sc.Np;
    for (idx i = 0; i < n; ++i) {
        mu[i] = static_cast<T>(sc.mean(i));
        for (idx j = i; j < n; ++j) {
            const T v = static_cast<T>(sc.value(i, j));
            cov[i * n + j] = v;
            cov[j * n + i] = v;
        }
    }
}

template void build_cov<float>(const StackCov<float>&, float*, float*);
template void build_cov<double>(const StackCov<double>&, double*, double*);

}  // namespace cloudcov
