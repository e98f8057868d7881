// Function table of the optimized BLAS/LAPACK that scipy ships (OpenBLAS), filled at
// import time from scipy.linalg.cython_blas / cython_lapack capsules by the bindings.
// Kernels receive it by reference; it is never modified after import.
#pragma once

namespace cloudcov {

template <class W>
struct LapackFns {
    void (*potrf)(char* uplo, int* n, W* a, int* lda, int* info) = nullptr;
    void (*potrs)(char* uplo, int* n, int* nrhs, W* a, int* lda, W* b, int* ldb,
                  int* info) = nullptr;
    void (*trsv)(char* uplo, char* trans, char* diag, int* n, W* a, int* lda, W* x,
                 int* incx) = nullptr;
    void (*gemv)(char* trans, int* m, int* n, W* alpha, W* a, int* lda, W* x, int* incx,
                 W* beta, W* y, int* incy) = nullptr;
    void (*lacn2)(int* n, W* v, W* x, int* isgn, W* est, int* kase, int* isave) = nullptr;
    void (*laic1)(int* job, int* j, W* x, W* sest, W* w, W* gamma, W* sestpr, W* s,
                  W* c) = nullptr;
    bool ready() const {
        return potrf && potrs && trsv && gemv && lacn2 && laic1;
    }
};

struct Lapack {
    LapackFns<float> s;
    LapackFns<double> d;
    template <class W>
    const LapackFns<W>& get() const;
};

template <>
inline const LapackFns<float>& Lapack::get<float>() const { return s; }
template <>
inline const LapackFns<double>& Lapack::get<double>() const { return d; }

// The process-wide table (set once by the bindings at import).
Lapack& lapack_table();

}  // namespace cloudcov
