// Every layout bnorm accepts collapses to one view before a kernel runs:
//
//     x is (outer, C, inner), C-contiguous, channel c at x[o*C*inner + c*inner + k]
//
// (N, C) is (N, C, 1); (N, C, L) is (N, C, L); NCHW is (N, C, H*W); NHWC with
// axis -1 is (N*H*W, C, 1); axis 0 of (C, L) is (1, C, L). One kernel then serves
// every layout (see lib/include/bnorm/batchnorm.hpp).
#pragma once

#include "bnorm/config.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace bnorm {

using Shape = std::vector<std::int64_t>;

/// The most axes an array may have: numpy before 2.0 reads at most 32, so bnorm refuses
/// more wherever a shape comes in (NPY headers, --shape), and every file it writes loads.
constexpr std::size_t kMaxRank = 32;

struct Layout {
    std::int64_t outer = 0;    ///< product of the dimensions before the channel axis
    std::int64_t channels = 0; ///< C, the size of the channel axis
    std::int64_t inner = 0;    ///< product of the dimensions after the channel axis

    /// m, the number of elements that share one channel's statistics.
    std::int64_t per_channel() const { return outer * inner; }
    std::int64_t size() const { return outer * channels * inner; }
};

/// Resolves a possibly negative axis against a rank.
/// Requires: -rank <= axis < rank, else throws UsageError naming both.
int normalize_axis(int axis, std::size_t rank);

/// Collapses `shape` around the channel axis.
/// Requires: rank >= 2 and a valid axis (UsageError otherwise). Zero-sized dimensions
/// are allowed here; batch-norm validity (m >= 2, C >= 1) is checked by check_problem.
Layout collapse(std::span<const std::int64_t> shape, int axis);

/// Checks that a batch norm over `shape` along `axis` is defined: rank >= 2, valid axis,
/// C >= 1 and m >= 2. `what` names the tensor in messages (a file name, "x").
/// Throws UsageError/InputError with expected vs found. Returns the collapsed layout.
/// min_per_channel: the least m accepted (1 in inference mode, where no batch statistics
/// are computed).
Layout check_problem(std::span<const std::int64_t> shape, int axis, const std::string& what,
                     std::int64_t min_per_channel = 2);

/// "(8, 3, 5, 7)", the way numpy prints a shape ("(3,)" for one dimension).
std::string shape_to_string(std::span<const std::int64_t> shape);

/// Number of elements, or -1 if it overflows int64 (a shape read from a file).
std::int64_t element_count(std::span<const std::int64_t> shape);

} // namespace bnorm
