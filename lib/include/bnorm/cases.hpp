// The test cases of bnorm gen: inputs that break normalization kernels (mean far above
// the spread, constant sets, sets of two, heavy tails, dy that cancels in dx, variance
// below eps, values near overflow and underflow), and ordinary normal data, for any norm
// of the family, shape and dtype. The data come from bnorm::Random, so the same seed gives
// the same values everywhere (docs/gen.md).
#pragma once

#include "bnorm/array.hpp"
#include "bnorm/family.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bnorm {

enum class Suite { ordinary, hard };

/// "ordinary" or "hard"; throws UsageError naming `option`, the value and the valid ones.
Suite parse_suite(std::string_view text, std::string_view option = "--suite");

/// The class names of a suite for a norm, in the order they are written: ordinary:
/// "normal"; hard: "offset", "constant", "two", "cauchy", "dy_cancel", "tiny_var", "huge",
/// "tiny". Batch norm adds an inference-mode class, with running statistics: "eval"
/// (ordinary) and "eval_offset" (hard).
std::vector<std::string> case_classes(Suite s, Norm n);

/// One generated case: the inputs of a problem, with what makes it hard.
struct GeneratedCase {
    std::string name;          ///< the class
    std::string hard_because;  ///< one sentence
    std::string eps;           ///< decimal, as --eps takes it
    double eps_value = 0;      ///< the double nearest to eps
    NormProblem problem;       ///< resolved against `shape` (the class may adapt it)
    /// The values, each exactly representable in the case's dtype (rounded once from the
    /// double drawn, half types included): x and dy of
    /// problem.shape, gamma and beta of problem.param_shape; beta empty for rms.
    std::vector<double> x, gamma, beta, dy;
    /// Inference mode (batch norm's classes eval and eval_offset): the running statistics
    /// to normalize with, C values each (the variance in [0.5, 2]); empty otherwise.
    bool eval = false;
    std::vector<double> running_mean, running_var;
};

/// The case of class `name` for a problem like `requested` (a checked NormProblem), in
/// `dtype`, from `seed`. Every class keeps the requested shape except "two", which sets
/// the extents of the axes a set runs over (the channel axis excepted: batch, every other
/// axis; instance and group, every axis but 0 and the channel axis; layer and rms, the
/// axes from `axis` on) to 2 for the first and 1 for the others, so that each set has
/// m = 2 elements (group norm keeps G: with two channels per group the spatial extents
/// become 1, with more C becomes 2·G). Any dtype; the half types adapt the classes to
/// their range (offset, tiny_var, huge, tiny; docs/gen.md). Ensures: the
/// result's problem passes check_norm_problem and its exact outputs are finite. Throws
/// UsageError for a name that is not one of case_classes(…, requested.norm).
GeneratedCase make_case(const std::string& name, const NormProblem& requested, DType dtype, std::uint64_t seed);

} // namespace bnorm
