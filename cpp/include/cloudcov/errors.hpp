// Error helpers shared by the kernels. No Python here: pybind11 maps
// std::invalid_argument to ValueError and NumericalError to cloudcov.NumericalError.
#pragma once
#include <stdexcept>
#include <string>

namespace cloudcov {

struct NumericalError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline void require(bool ok, const std::string& msg) {
    if (!ok) throw std::invalid_argument(msg);
}

}  // namespace cloudcov
