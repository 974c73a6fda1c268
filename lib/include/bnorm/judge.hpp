// Judging a candidate output against the exact one: the verdict and the statistics of
// `bnorm compare` (docs/compare.md has the criterion, its measured margins and why).
//
// The default criterion is condition-aware: element i passes when
//   |got_i − exact_i| ≤ k·eps(dtype)·scale_i + floor,
// where scale_i is the magnitude of the terms that a correct algorithm sums to get that
// element (the scale_* functions below), so that a kernel's rounding where terms cancel is
// not taken for a bug, while a kernel that loses digits to the data's offset (the mean far
// from the spread) or computes another function is flagged. `floor` = max(k·eps·2^-40·
// max_j scale_j, the dtype's smallest subnormal) keeps exact zeros with zero scales from
// flagging a correctly rounded result.
#pragma once

#include "bnorm/array.hpp"
#include "bnorm/family.hpp"
#include "bnorm/layout.hpp"

#include <array>
#include <cstdint>
#include <span>

namespace bnorm {

/// k of the default criterion: PyTorch 1.13's CPU outputs stay within a third of the
/// tolerance (21 eps of the terms) on ordinary data of up to 32768 values per set, and the
/// classic wrong kernels exceed it 11.8 times and more (measured: docs/compare.md).
inline constexpr double kJudgeDefaultK = 64;

/// k of the default criterion for float16 and bfloat16 candidates. Half kernels work in
/// float32 and round once at the end (PyTorch, ONNX stash_type = 1): a correct one is within
/// half an ulp of the half type, and |exact| ≤ scale, so 4 leaves a margin of 8. 64 would
/// pass a bfloat16 dx a quarter off (64·2^-7 = 1/2 of the scale).
inline constexpr double kJudgeHalfK = 4;

/// eps of a dtype: 2^-23 (float32), 2^-52 (float64), 2^-10 (float16), 2^-7 (bfloat16).
double dtype_eps(DType t);

/// The ulp of `value` in dtype t: the spacing of t's numbers at |value| (the subnormal
/// spacing below the normal range, the spacing at the largest finite number beyond it).
double ulp_in(DType t, double value);

struct JudgeCriterion {
    enum class Kind {
        scaled,      ///< |got − exact| ≤ k·eps·scale_i + floor (the default)
        elementwise, ///< |got − exact| ≤ atol + rtol·|exact|
        normwise,    ///< max|got − exact| ≤ tol_eps·eps·max|exact|
    };
    Kind kind = Kind::scaled;
    double k = kJudgeDefaultK;
    double half_k = kJudgeHalfK; ///< k for float16 and bfloat16 candidates
    double rtol = 0, atol = 0;
    double tol_eps = 0;
};

/// What judge() found. Errors are |got − exact| as doubles; NaN against NaN and an
/// infinity against the same infinity count as equal, any other non-finite pair as an
/// infinite error.
struct JudgeVerdict {
    bool passed = true;
    std::int64_t count = 0;            ///< elements judged
    double max_abs_err = 0;
    double normwise_eps = 0;           ///< max|got − exact| / max|exact| / eps (inf when exact is all 0 and got is not)
    double max_ulp = 0;                ///< max |got − exact| / ulp_in(dtype, exact)
    /// elements by ulp error n (|got − exact|/ulp rounded to the nearest integer, ties up):
    /// n = 0, 1, 2–4, 5–16, 17–256, > 256
    std::array<std::int64_t, 6> ulp_histogram{};
    std::int64_t over = 0;             ///< elements over the tolerance
    double over_fraction = 0;          ///< over / count
    double max_ratio = 0;              ///< max |got − exact| / allowed_i: ≤ 1 passes
    double floor = 0;                  ///< scaled: the floor used; elementwise: atol; normwise: the allowed error
    std::int64_t worst = -1;           ///< flat index of the element of max ratio (the first of equals)
    Shape worst_index;                 ///< its multi-index in `shape`
    double worst_got = 0, worst_exact = 0, worst_ulp = 0, worst_allowed = 0;
};

/// Judges `got` (the candidate's values, exactly converted to double) against `exact`
/// (the exact values, rounded to double or better) in dtype t, element i against scale[i]
/// (used by the scaled criterion only; may be empty otherwise). Requires got, exact (and
/// scale when used) of element_count(shape) values. Never throws.
JudgeVerdict judge(std::span<const double> exact, std::span<const double> got, std::span<const double> scale,
                   std::span<const std::int64_t> shape, DType t, const JudgeCriterion& c);

// ---- The scales: the magnitudes of the terms a correct kernel sums (judge_scales.cpp) ----
//
// Arguments are the problem's inputs and its exact statistics in double: x and dy cover
// p.size() values in x's order, gamma and beta p.params values (nullptr: ones, zeros),
// mean and invstd p.sets values (rms: mean nullptr). The outputs are assigned.

/// y: |γ|·(|x − mean| + σ)·invstd + |β|, σ = sqrt(1/invstd² − eps) the set's standard
/// deviation (rms: x for x − mean, the root mean square for σ). The σ term is the set's
/// typical |x̂|: the mean is rounded there in every kernel, so its error reaches each
/// element at that size; the mean's own magnitude is not a term (a kernel that loses
/// digits to an offset mean is flagged).
void scale_y(const double* x, const double* gamma, const double* beta, const double* mean, const double* invstd,
             const NormProblem& p, double eps, double* scale);

/// dx: invstd·(|dx̂_i| + mean|dx̂| + |x̂_i|·mean|dx̂·x̂|) over the set, dx̂ = γ·dy (rms:
/// without mean|dx̂|). The sums Σdx̂ and Σdx̂·x̂ count with their terms' magnitudes, which is
/// what a correct kernel's sums are accurate to.
void scale_dx(const double* x, const double* gamma, const double* dy, const double* mean, const double* invstd,
              const NormProblem& p, double* scale);

/// dx of inference mode (batchnorm.hpp's backward_eval, dx = γ·invstd·dy, the statistics
/// being constants): invstd·|γ·dy|.
void scale_dx_eval(const double* gamma, const double* dy, const double* invstd, const NormProblem& p, double* scale);

/// dγ: Σ|dy|·(|x̂| + σ·invstd) and dβ: Σ|dy| over the elements that share each parameter
/// (either output may be nullptr). σ·invstd, the set's typical |x̂| as in scale_y, is the
/// size of x̂'s error from the rounded mean: where few elements share a parameter (layer
/// norm of one row: dγ_k = dy_k·x̂_k) and x̂ is small, that error is not eps·|x̂|.
void scale_dgamma_dbeta(const double* x, const double* dy, const double* mean, const double* invstd,
                        const NormProblem& p, double eps, double* dgamma, double* dbeta);

/// mean: the mean of |x| over each set.
void scale_mean(const double* x, const NormProblem& p, double* scale);

/// The running statistics' update (batchnorm.hpp's RunningUpdate), per channel:
/// new mean (1 − M)·|old mean| + M·mean|x|; new var (1 − M)·old var + M·var·m/(m − correction),
/// var = 1/invstd² − eps. Either output may be nullptr.
void scale_running(const double* x, const double* old_mean, const double* old_var, const double* invstd,
                   double momentum, int correction, double eps, const NormProblem& p, double* new_mean,
                   double* new_var);

} // namespace bnorm
