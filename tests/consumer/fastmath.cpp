// Compiled with -ffast-math by the target fastmath_refused, which must fail: bnorm/config.hpp
// (included by every public header) stops any build without IEEE semantics.
#include <bnorm/batchnorm.hpp>

int fastmath_refused() { return 0; }
