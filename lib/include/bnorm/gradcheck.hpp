// Gradient check: analytic gradients of f = Σ dy ⊙ y (with respect to x, γ, β) against
// numerical derivatives of bnorm's forward pass.
//
// Numerical method: complex-step differentiation, f'(x)·h ≈ Im f(x + i·h), on a forward
// pass of one set of statistics written once as a template over the scalar type
// (lib/src/complex_step.hpp, set_objective: batch norm's channel, instance norm's (sample,
// channel), group norm's (sample, group), layer and RMS norm's row) and instantiated for
// complex numbers with double-double parts; the set-by-set check is in
// lib/src/gradcheck_engine.cpp.
// The step h is 2^-70 of the set's standard deviation: there is no subtraction of
// nearby values, so the derivative is accurate to double-double precision, ~1e-30 of the
// size of its terms, on any conditioning. Its own error is estimated on a few elements by
// an independent method: Richardson-extrapolated central differences of the same
// template instantiated for real double-double numbers.
#pragma once

#include "bnorm/array.hpp"
#include "bnorm/family.hpp"
#include "bnorm/layout.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace bnorm {

struct GradcheckOptions {
    /// The criterion. Neither given (the default): condition-aware, as `bnorm compare`
    /// (bnorm/judge.hpp): element i passes iff |analytic − numerical| <= k·eps·scale_i +
    /// floor, k = kJudgeDefaultK, eps of T, scale_i the magnitude of the terms a correct
    /// kernel sums for it (scale_dx, scale_dgamma_dbeta; inference: scale_dx_eval), floor =
    /// max(k·eps·2^-40·max scale, T's smallest subnormal).
    /// Either given: elementwise, |analytic − numerical| <= atol + rtol·|numerical|, rtol
    /// then defaulting to 1e-11 (float64) or 1e-5 (float32) and atol to
    /// 1e-3·rtol·max|numerical| of that tensor.
    std::optional<double> rtol, atol;
    /// The dtype of the given gradients when narrower than T: float16 or bfloat16 problems
    /// run in double on the exact widening of their data. The criterion then takes that
    /// dtype's eps and smallest subnormal and k = kJudgeHalfK, and the elementwise rtol defaults to 16 of its
    /// eps (float16 1/64, bfloat16 1/8: a correctly rounded gradient is within half an eps).
    std::optional<DType> given_dtype;
    std::uint64_t seed = 0;       ///< for random dy draws, directions and samples
    int random_dy_draws = 3;      ///< used when no dy is given
    bool full = false;            ///< check every element whatever the size
    /// Elementwise mode up to this many elements, randomized mode above. The cost of
    /// elementwise mode is n·m element evaluations per dy (8 per pass).
    std::int64_t elementwise_limit = 10000;
    int directions = 4;           ///< random ±1 directions per dy in randomized mode (<= 8)
    int samples = 16;             ///< random elements per dy in randomized mode (plus the
                                  ///< first and last element of every set)
    int threads = 0;              ///< 0: all cores; results do not depend on it
    /// Inference mode: judge the gradients of y = γ·(x − running_mean)/sqrt(running_var +
    /// eps) + β, the running statistics (C values each, x's values widened to double)
    /// being constants; m = 1 is allowed. Training mode (false) ignores them.
    bool eval = false;
    std::vector<double> running_mean, running_var;
    /// Called with the fraction done (0..1) from the calling thread, now and then.
    std::function<void(double)> progress;
};

/// The verdict for one of x, γ, β.
struct TensorVerdict {
    bool judged = false;          ///< false when its gradient was not given to judge
    bool passed = true;
    double max_abs_err = 0;       ///< max |analytic − numerical|
    double max_rel_err = 0;       ///< max |a − n| / max(|n|, 1e-3·max|n|)
    std::vector<std::int64_t> worst_index; ///< multi-index of the element closest to failing
    double worst_ratio = -1;      ///< its |a − n| / (atol + rtol·|n|): > 1 means it failed
    double worst_analytic = 0, worst_numerical = 0;
    int worst_draw = 0;           ///< which dy draw (0-based) it came from
    std::int64_t checked = 0;     ///< distinct elements compared one by one
    std::int64_t total = 0;       ///< elements in the tensor
    double atol = 0, rtol = 0;    ///< tolerances used (atol of the worst draw; scaled: the floor, rtol 0)
    // randomized mode: directional derivatives, per set (batch: channel)
    std::int64_t directional_checks = 0;
    double directional_max_rel_err = 0; ///< |a·v − n·v| / Σ|a_i·v_i|
    double directional_worst_ratio = 0; ///< max |a·v − n·v| / its allowed error: > 1 failed
    std::int64_t directional_worst_channel = -1;
    bool directional_passed = true;
};

struct GradcheckReport {
    bool passed = true;
    std::string mode;             ///< "elementwise" or "randomized"
    bool scaled = true;           ///< the default criterion (false: --rtol/--atol's elementwise one)
    double k = 0, eps = 0;        ///< scaled: its k and eps (of T)
    int dy_draws = 0;             ///< number of upstream gradients checked
    bool dy_given = false;
    bool gradients_given = false; ///< judged the caller's gradients, not bnorm's backward
    TensorVerdict x, gamma, beta;
    double step_relative = 0;     ///< h / std of the set (batch: channel)
    int lanes = 0;                ///< imaginary units carried by one forward pass
    double estimated_method_error = 0; ///< max |complex step − Richardson| / max|numerical|
    std::int64_t crosscheck_elements = 0;
    std::int64_t forward_evaluations = 0; ///< forward passes over one set (complex + real)
    std::int64_t forward_element_evaluations = 0; ///< the same, counted in elements
    double elapsed_seconds = 0;
};

/// Gradients to judge, given by the caller. Each pointer may be null (not judged);
/// dx has l.size() elements, dgamma and dbeta l.channels, all in x's type.
template <class T> struct GivenGradients {
    const T* dx = nullptr;
    const T* dgamma = nullptr;
    const T* dbeta = nullptr;
    bool any() const { return dx || dgamma || dbeta; }
};

/// Runs the check. `shape` is x's shape (for the multi-indices in the report) and l its
/// collapse around the channel axis. gamma/beta may be null (ones/zeros). dy may be null
/// only when no gradients are given: then random upstream gradients are drawn (seeded,
/// independent of the thread count). Without given gradients, bnorm's own backward is
/// judged. Requires the same as forward()/backward(); throws InputError for a
/// zero-variance channel with eps = 0 and UsageError for given gradients without dy.
template <class T>
GradcheckReport gradcheck(const T* x, const Shape& shape, const Layout& l, const T* gamma, const T* beta,
                          const T* dy, double eps, const GivenGradients<T>& given,
                          const GradcheckOptions& options);

/// The same check for any norm of the family (bnorm/family.hpp): the numerical
/// derivatives of its forward pass, set by set, against its backward pass or the given
/// gradients (dx of p.size() values, dgamma and dbeta of p.params; rms has no β and no
/// dβ). For Norm::batch, the function above on p's layout. options.eval applies to batch
/// norm only (UsageError for another norm).
/// The report's worst_index is a multi-index into x's shape (dx) or p.param_shape (dγ,
/// dβ); in randomized mode the directions are per set of statistics, and
/// directional_worst_channel is the worst set's index (0 ≤ s < p.sets, in the order of
/// mean and invstd). UsageError for beta or dbeta with rms and for given gradients without
/// dy; InputError when eps = 0 and a set is constant (rms: all zeros), naming the set.
template <class T>
GradcheckReport gradcheck(const T* x, const NormProblem& p, const T* gamma, const T* beta, const T* dy, double eps,
                          const GivenGradients<T>& given, const GradcheckOptions& options);

} // namespace bnorm
