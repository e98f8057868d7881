// conditioning.hpp is header-only (templated on the covariance source); this unit checks
// that it compiles on its own.
#include "cloudcov/conditioning.hpp"
