// A portable pseudo-random generator for test data (bnorm gen): the same seed gives the
// same numbers on every machine, compiler and standard library. xoshiro256** (Blackman and
// Vigna) seeded by splitmix64; the transforms use only +, −, ×, ÷ (correctly rounded by
// IEEE 754), never libm's log, sin or cos, whose last bits differ between libm versions,
// nor std::normal_distribution, whose algorithm differs between standard libraries.
#pragma once

#include <cstdint>
#include <string_view>

namespace bnorm {

class Random {
public:
    /// A stream of numbers that depends on `seed` and `stream` (a name: "offset/x") only,
    /// so that each tensor of each case has its own numbers, whatever else is drawn.
    Random(std::uint64_t seed, std::string_view stream);

    /// The next 64 random bits (xoshiro256**).
    std::uint64_t next();
    /// Uniform on [0, 1): a multiple of 2^-53.
    double uniform();
    /// Approximately standard normal: the sum of 12 uniforms minus 6 (Irwin–Hall; mean 0,
    /// variance 1, tails cut at ±6). Ensures: |result| ≤ 6.
    double normal();
    /// Standard Cauchy: v/u for (u, v) uniform in the unit disk (rejection), which is
    /// tan of a uniform angle without tan. Ensures: finite, |result| < 2^54.
    double cauchy();

private:
    std::uint64_t s_[4];
};

} // namespace bnorm
