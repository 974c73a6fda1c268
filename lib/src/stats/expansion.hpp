// Exact arithmetic for the last tier of the backward pass (exact_set.cpp), where dx is so
// small against its terms that even double-double sums cannot give it: LongSum adds any
// number of doubles without rounding, and floating-point expansions (Shewchuk, "Adaptive
// precision floating-point arithmetic and fast robust geometric predicates", 1997) take
// the few products and differences of those sums exactly. Internal.
//
// Both are exact as long as no product underflows (TwoProd's error term below 2^-1074):
// their callers scale the data to magnitudes near 1 first.
#pragma once

#include "../ddouble.hpp"

#include <bit>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <vector>

namespace bnorm::detail {

/// A sum of finite doubles, kept exactly in fixed point: 32-bit digits in 64-bit chunks,
/// chunk k weighing 2^(kLow + 32k), so that an add touches three chunks and never rounds.
/// The chunks' headroom takes 2^30 adds between carries.
class LongSum {
public:
    /// Adds a finite v.
    void add(double v) {
        const std::uint64_t bits = std::bit_cast<std::uint64_t>(v);
        const int biased = int(bits >> 52 & 0x7ff);
        assert(biased != 0x7ff);
        std::uint64_t mant = bits & ((std::uint64_t(1) << 52) - 1);
        if (biased == 0 && mant == 0) return;
        if (biased != 0) mant |= std::uint64_t(1) << 52;
        const int lsb = (biased == 0 ? 1 : biased) - 1075; // |v| = mant·2^lsb
        const int p = lsb - kLow, k = p >> 5;
        // mant·2^s < 2^85 as three 32-bit digits: the low one, then `up` = mant·2^s / 2^32
        const int shift = p & 31;
        const std::uint64_t up = mant >> (32 - shift);
        const auto d0 = std::int64_t((mant << shift) & 0xffffffff), d1 = std::int64_t(up & 0xffffffff),
                   d2 = std::int64_t(up >> 32);
        // the sign without a branch (random signs would mispredict half the time): ±d = (d ^ s) − s
        const auto s = -std::int64_t(bits >> 63);
        chunk_[k] += (d0 ^ s) - s, chunk_[k + 1] += (d1 ^ s) - s, chunk_[k + 2] += (d2 ^ s) - s;
        if (++adds_ == kCarryEvery) carry();
    }

    /// The sum times 2^-shift as a nonoverlapping expansion, smallest component first
    /// (empty for 0); components below double's range, 2^-1074 of the largest, may be lost.
    std::vector<double> expansion(int shift = 0) {
        carry();
        std::vector<double> e;
        for (int k = 0; k < kChunks; ++k)
            if (chunk_[k] != 0) e.push_back(std::ldexp(double(chunk_[k]), kLow + 32 * k - shift));
        return e;
    }

    /// An e with |sum| < 2^e, within 2^33 of it (0 for a zero sum): the shift that brings
    /// the sum near 1, however far beyond double's range it has grown.
    int exponent() {
        carry();
        for (int k = kChunks - 1; k >= 0; --k)
            if (chunk_[k] != 0) return kLow + 32 * (k + 1);
        return 0;
    }

private:
    static constexpr int kLow = -1088;  // a multiple of 32 below 2^-1074, double's least bit
    static constexpr int kChunks = 68;  // up to 2^(kLow + 32·68) = 2^1088: double's range, and carries
    static constexpr std::int64_t kCarryEvery = std::int64_t(1) << 30;

    /// Each chunk to a balanced digit in [−2^31, 2^31), the excess carried up: the
    /// chunks' values are then nonoverlapping, whatever the sign of the sum.
    void carry() {
        for (int k = 0; k + 1 < kChunks; ++k) {
            const std::int64_t q = (chunk_[k] + (std::int64_t(1) << 31)) >> 32; // floor: arithmetic shift
            chunk_[k] -= q * (std::int64_t(1) << 32);
            chunk_[k + 1] += q;
        }
        adds_ = 0;
    }

    std::int64_t chunk_[kChunks] = {};
    std::int64_t adds_ = 0;
};

/// Floating-point expansions: a value as the exact sum of nonoverlapping doubles, smallest
/// first, zeros left out.
namespace expansion {

using Expansion = std::vector<double>;

/// h += b in place (Grow-Expansion).
inline void grow_into(Expansion& h, double b) {
    std::size_t k = 0;
    for (std::size_t i = 0; i < h.size(); ++i) {
        const dd s = two_sum(b, h[i]);
        b = s.hi;
        if (s.lo != 0) h[k++] = s.lo;
    }
    h.resize(k);
    if (b != 0) h.push_back(b);
}

/// e + b.
inline Expansion grow(Expansion e, double b) {
    grow_into(e, b);
    return e;
}

/// e + f.
inline Expansion sum(Expansion e, const Expansion& f) {
    for (double c : f) grow_into(e, c);
    return e;
}

/// −e.
inline Expansion negated(Expansion e) {
    for (double& c : e) c = -c;
    return e;
}

/// e·b (Scale-Expansion).
inline Expansion scaled(const Expansion& e, double b) {
    Expansion h;
    if (e.empty() || b == 0) return h;
    h.reserve(2 * e.size());
    const auto keep = [&](double v) {
        if (v != 0) h.push_back(v);
    };
    dd p = two_prod(e[0], b);
    keep(p.lo);
    double q = p.hi;
    for (std::size_t i = 1; i < e.size(); ++i) {
        const dd t = two_prod(e[i], b);
        const dd s = two_sum(q, t.lo);
        keep(s.lo);
        const dd f = fast_two_sum(t.hi, s.hi);
        keep(f.lo);
        q = f.hi;
    }
    keep(q);
    return h;
}

/// The same value in fewer components, the largest within an ulp of the whole (Compress).
inline Expansion compressed(const Expansion& e) {
    if (e.size() < 2) return e;
    std::vector<double> g(e.size());
    std::size_t bottom = e.size() - 1;
    double q = e.back();
    for (std::size_t i = e.size() - 1; i-- > 0;) {
        const dd s = fast_two_sum(q, e[i]);
        if (s.lo != 0) g[bottom--] = s.hi, q = s.lo;
        else q = s.hi;
    }
    g[bottom] = q;
    Expansion h;
    for (std::size_t i = bottom + 1; i < e.size(); ++i) {
        const dd s = fast_two_sum(g[i], q);
        if (s.lo != 0) h.push_back(s.lo);
        q = s.hi;
    }
    if (q != 0) h.push_back(q);
    return h;
}

/// e·f, compressed.
inline Expansion product(const Expansion& e, const Expansion& f) {
    Expansion h;
    for (double c : f) h = sum(std::move(h), scaled(e, c));
    return compressed(h);
}

/// The double-double nearest the value, to a few 2^-106 of it (exact when the compressed
/// value has at most two components), added from the smallest component up.
inline dd to_dd(const Expansion& e) {
    dd s{};
    for (double c : e) s = add(s, c);
    return s;
}

/// Whether to_dd(e) is e exactly.
inline bool fits_dd(const Expansion& e) { return compressed(e).size() <= 2; }

} // namespace expansion
} // namespace bnorm::detail
