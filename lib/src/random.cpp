// xoshiro256** and its transforms (bnorm/random.hpp).
#include "bnorm/random.hpp"

namespace bnorm {
namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/// FNV-1a, 64 bits: the stream's name as a number.
std::uint64_t fnv1a(std::string_view text) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const char c : text) h = (h ^ std::uint8_t(c)) * 0x100000001b3ull;
    return h;
}

std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

} // namespace

Random::Random(std::uint64_t seed, std::string_view stream) {
    std::uint64_t state = seed ^ fnv1a(stream);
    for (auto& s : s_) s = splitmix64(state); // splitmix64 never gives four zeros in a row
}

std::uint64_t Random::next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

double Random::uniform() { return double(next() >> 11) * 0x1p-53; }

double Random::normal() {
    double sum = 0; // in a fixed order: the same rounding everywhere
    for (int i = 0; i < 12; ++i) sum += uniform();
    return sum - 6;
}

double Random::cauchy() {
    for (;;) {
        const double u = 2 * uniform() - 1, v = 2 * uniform() - 1;
        if (u != 0 && u * u + v * v < 1) return v / u;
    }
}

} // namespace bnorm
