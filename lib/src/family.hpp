// The family's kernels behind bnorm/family.hpp's forward and backward (family.cpp checks
// the arguments and dispatches): instance and group norm in family_sets.cpp, layer and
// RMS norm in family_rows.cpp. The arguments are as bnorm/family.hpp's, already checked.
#pragma once

#include "bnorm/family.hpp"

namespace bnorm::family {

/// Instance and group norm: the sets are (sample, channel) or (sample, group) pairs.
template <class T>
void forward_sets(const T* x, const T* gamma, const T* beta, const NormProblem& p, double eps, T* y, T* mean,
                  T* invstd, int threads);
template <class T>
void backward_sets(const T* x, const T* gamma, const T* dy, const NormProblem& p, double eps, T* dx, T* dgamma,
                   T* dbeta, int threads);

/// Layer and RMS norm: the sets are rows of p.per_set contiguous values; γ and β are
/// indexed by the position in the row.
template <class T>
void forward_rows(const T* x, const T* gamma, const T* beta, const NormProblem& p, double eps, T* y, T* mean,
                  T* invstd, int threads);
template <class T>
void backward_rows(const T* x, const T* gamma, const T* dy, const NormProblem& p, double eps, T* dx, T* dgamma,
                   T* dbeta, int threads);

} // namespace bnorm::family
