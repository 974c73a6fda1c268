// The all-double-double kernels (batchnorm_exact.cpp): the same contract as forward() and
// backward() in bnorm/batchnorm.hpp, single-threaded, for any input. Internal.
#pragma once

#include "bnorm/layout.hpp"

namespace bnorm::detail {

template <class T>
void forward_exact(const T* x, const Layout& l, const T* gamma, const T* beta, double eps, T* y,
                   T* mean, T* invstd);

/// skip: when given, the channels c with skip[c] != 0 are left out (their outputs untouched).
template <class T>
void backward_exact(const T* x, const T* gamma, const T* dy, const Layout& l, double eps, T* dx,
                    T* dgamma, T* dbeta, const char* skip = nullptr);

} // namespace bnorm::detail
