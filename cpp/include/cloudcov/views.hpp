// Non-owning views of caller-owned arrays. No Python here.
#pragma once
#include <cstdint>
#include <limits>

namespace cloudcov {

using idx = std::int64_t;

// a - b without signed overflow: false (out untouched) when the result does not fit.
inline bool checked_sub(idx a, idx b, idx& out) {
    constexpr idx lo = std::numeric_limits<idx>::min(), hi = std::numeric_limits<idx>::max();
    if ((b > 0 && a < lo + b) || (b < 0 && a > hi + b)) return false;
    out = a - b;
    return true;
}

// a * b for a, b >= 0 without signed overflow: false (out untouched) when it does not fit.
inline bool checked_mul(idx a, idx b, idx& out) {
    if (a < 0 || b < 0) return false;
    if (a != 0 && b > std::numeric_limits<idx>::max() / a) return false;
    out = a * b;
    return true;
}

// [start, start + len) lies inside [0, size), without overflow for any start.
inline bool span_inside(idx start, idx len, idx size) {
    return start >= 0 && len >= 0 && len <= size && start <= size - len;
}

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

// The shifted-product stack, shift-row major: value (drow, r, c, dcol) at
// data[((drow * rows + r % rows) * cols + c) * nslot + dcol + Np - 1] with nslot = 2 Np - 1,
// drow in [0, Np), dcol in (-Np, Np). See shift_stack.hpp. Output row r is stored in slot
// r % rows: a stack of `rows` rows is a ring buffer over a longer sweep (lpi_strip); for a
// whole tile (r < rows) the slot is the row itself.
template <class T>
struct Stack {
    T* data = nullptr;
    idx Np = 0;
    idx rows = 0;
    idx cols = 0;
    idx nslot() const { return 2 * Np - 1; }
    idx group_stride() const { return rows * cols * nslot(); }
    // Entry of shift (drow, dcol) at boxcar-output pixel (r, c).
    T* at(idx drow, idx r, idx c, idx dcol) const {
        return data + drow * group_stride() + ((r % rows) * cols + c) * nslot() + dcol + Np - 1;
    }
};

}  // namespace cloudcov
