// How pass A sums, and the shapes of its kernels' tiles (terms per accumulator before a
// fold), on which the certificates' bounds depend.
#pragma once

#include "simd.hpp"
#include <cstdint>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

/// How pass A sums: error-free (any data), plain (float32), biased (float64, and float32's
/// second stage), or biased around a centre per channel (float64's second stage).
enum class Summation { exact, plain, biased, centred };

constexpr int kLanes = 8;                            // independent accumulators, fixed order

// 32, not 64: with 64 the folds cost half as much, but the bound doubles, and so does the
// chance that a channel whose dγ is a tiny fraction of its terms fails its certificate
// and sends pass A and B to the slow kernels.
constexpr std::int64_t kPlainRun = 32; // terms per plain accumulator before it is folded

constexpr std::int64_t kTileRows = 16; // channels-last rows summed with the accumulators in registers
static_assert(kPlainRun % kTileRows == 0, "a plain accumulator is folded after whole tiles");

/// A tile of the biased kernels: `terms` added to each accumulator between folds, and how
/// many accumulators share one largest magnitude V. Rows: 16 rows, a V per channel. Runs:
/// 32 steps of 8 lanes sharing the chunk's V (longer tiles fold less often; the rows
/// kernel is slower with 32).
struct BiasedShape {
    int terms, sharing;
};
constexpr BiasedShape kRowTile{16, 1}, kRunTile{32, 8};

} // namespace
} // namespace bnorm::kernels
