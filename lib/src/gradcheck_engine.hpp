// The one gradient check behind both of bnorm/gradcheck.hpp's entry points: given how the
// elements form sets (gradcheck_sets.hpp), each set's step and bnorm's backward for the
// problem, it judges the analytic gradients of f = Σ dy ⊙ y against complex-step
// derivatives of set_objective (complex_step.hpp), set by set. gradcheck.cpp (batch
// norm) and gradcheck_family.cpp (the other norms) check their arguments and call it.
#pragma once

#include "bnorm/gradcheck.hpp"
#include "gradcheck_sets.hpp"

#include <functional>
#include <memory>
#include <vector>

namespace bnorm::gradcheck_detail {

/// The problem as the engine sees it. Every pointer as bnorm/gradcheck.hpp says, already
/// checked; beta is null for rms.
template <class T> struct CheckInputs {
    const T* x = nullptr;
    Shape shape;       ///< x's shape, for the multi-indices of dx
    SetMap map;
    Shape param_shape; ///< γ's shape, for the multi-indices of dγ and dβ
    bool has_beta = true; ///< false for rms: no β, no dβ
    const T *gamma = nullptr, *beta = nullptr, *dy = nullptr;
    double eps = 0;
    GivenGradients<T> given;
    std::vector<double> step; ///< h_s per set: 2^-70 of the set's standard deviation (rms: its root mean square)
    /// bnorm's own backward for an upstream gradient: writes dx (size()), dγ and dβ
    /// (params(); dβ is null when !has_beta).
    std::function<void(const T* dy, T* dx, T* dgamma, T* dbeta)> backward;
    /// The default criterion's scales (bnorm/judge.hpp) for an upstream gradient: writes
    /// the scale of each dx element (x's order), of each dγ and dβ (params(); dβ may be
    /// null). gradient_scales() below makes it.
    std::function<void(const T* dy, double* dx, double* dgamma, double* dbeta)> scales;
};

/// Batch norm over `l` as a NormProblem (the sets are the channels), for the scales.
NormProblem batch_problem(const Shape& shape, const Layout& l);

/// CheckInputs::scales for problem p: judge.hpp's scale_dx (scale_dx_eval in inference
/// mode, with opt's running statistics) and scale_dgamma_dbeta, with x̂ from x's
/// statistics in double. Keeps its own copies of x and γ.
template <class T>
std::function<void(const T*, double*, double*, double*)> gradient_scales(const T* x, const T* gamma,
                                                                        const NormProblem& p, double eps,
                                                                        const GradcheckOptions& opt);

/// Runs the check (options as bnorm/gradcheck.hpp says; eval only for batch sets, whose
/// set s is channel s).
template <class T> GradcheckReport run_check(const CheckInputs<T>& in, const GradcheckOptions& opt);

} // namespace bnorm::gradcheck_detail
