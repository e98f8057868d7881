#include "cloudcov/lapack.hpp"

namespace cloudcov {

Lapack& lapack_table() {
    static Lapack table;
    return table;
}

}  // namespace cloudcov
