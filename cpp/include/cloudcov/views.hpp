// Non-owning views of caller-owned arrays. No Python here.
#pragma once
#include <cstdint>

namespace cloudcov {

using idx = std::int64_t;

// A 2-D row-major array: element (r, c) at data[r * stride + c].
template <class T>
struct Image {
    T* data = nullptr;
    idx rows = 0;
    idx cols = 0;
    idx stride = 0;  // elements between consecutive rows

    Image() = default;
    Image(T* d, idx r, idx c) : data(d), rows(r), cols(c), stride(c) {}
    Image(T* d, idx r, idx c, idx s) : data(d), rows(r), cols(c), stride(s) {}
    T& operator()(idx r, idx c) const { return data[r * stride + c]; }
    T* row(idx r) const { return data + r * stride; }
};

// The shifted-product stack of one tile: value (r, c, s) at data[(r * cols + c) * nshift + s],
// i.e. for every boxcar-output pixel all shifts are contiguous (see shift_stack.hpp).
template <class T>
struct Stack {
    T* data = nullptr;
    idx rows = 0;
    idx cols = 0;
    idx nshift = 0;
    T* at(idx r, idx c) const { return data + (r * cols + c) * nshift; }
};

}  // namespace cloudcov
