// The first look at a tile before its biased sums: its largest magnitudes (which set the
// biases), and for float32 whether its sums are exact without error terms.
#pragma once

#include "lanes.hpp"
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

/// float32 data: where the biased sums of x (and of dy) need no error terms. A float's
/// value is a multiple of its ulp, 2^(f − 150) for biased exponent f (f ≥ 1; 2^-149 for
/// subnormals). β = 8N·2^E, E = ⌊log2 V⌋, and N terms keep the accumulator within
/// (β/2, 2β), whose ulp is at most 2^(E + log2(8N) − 52). So when every nonzero term's
/// exponent is at least f_V − 29 + log2(8N), every partial sum a + v is a multiple of that
/// ulp within the accumulator's range: exact, and the error term v − (s − a) is +0 at every
/// step. The kernel then leaves it at +0 without computing it (the same bits). The look at
/// a tile is done on the floats themselves: the largest magnitude as max_magnitude takes it
/// (NaN not taken), and the bits of the smallest nonzero one (an unsigned minimum of
/// bits − 1, which wraps zeros past every other value). A tile with a NaN or ±inf may go
/// either way: its sums are NaN, and its channel is summed again by the exact kernel.
/// FloatLook<D, Chunks> looks at Chunks chunks of kLanesOf<D> channels side by side, in
/// one instruction where it fits (sixteen floats), and chunk<P>() gives chunk P its own.
template <int L> struct FloatLanes { // L floats, and as many 32-bit integers (GCC 12 drops
    // a dependent vector_size from an alias declaration, not from a typedef)
    typedef float F __attribute__((vector_size(4 * L)));
    typedef std::uint32_t U __attribute__((vector_size(4 * L)));
    typedef std::int32_t I __attribute__((vector_size(4 * L)));
};
template <> struct FloatLanes<1> {
    using F = float;
    using U = std::uint32_t;
    using I = std::int32_t;
};
template <class D, int Chunks = 1> struct FloatLook {
    static constexpr int L = kLanesOf<D> * Chunks;
    using F = typename FloatLanes<L>::F;
    using U = typename FloatLanes<L>::U;
    using I = typename FloatLanes<L>::I;
    F largest{};
    U smallest_less_one = U{} - 1u; // (bits of the smallest nonzero magnitude) − 1

    void add(const float* p) {
        U b;
        std::memcpy(&b, p, sizeof b);
        b &= 0x7fffffffu;
        F a;
        std::memcpy(&a, &b, sizeof a);
        largest = a > largest ? a : largest; // vmaxps
        const U less_one = b - 1u;
        smallest_less_one = less_one < smallest_less_one ? less_one : smallest_less_one; // vpminud
    }
    /// The look at both sets of values (o's too).
    void merge(const FloatLook& o) {
        largest = o.largest > largest ? o.largest : largest;
        smallest_less_one = o.smallest_less_one < smallest_less_one ? o.smallest_less_one : smallest_less_one;
    }
    /// The look at the lanes of chunk P of the Chunks: [P·kLanesOf<D>, (P + 1)·kLanesOf<D>).
    template <int P> FloatLook<D> chunk() const {
        static_assert(P < Chunks);
        FloatLook<D> one;
        std::memcpy(&one.largest, reinterpret_cast<const char*>(&largest) + P * sizeof one.largest, sizeof one.largest);
        std::memcpy(&one.smallest_less_one, reinterpret_cast<const char*>(&smallest_less_one) + P * sizeof one.smallest_less_one,
                    sizeof one.smallest_less_one);
        return one;
    }
    /// The look at the values of every lane, as one lane.
    FloatLook<double> across() const {
        FloatLook<double> one;
        for (int j = 0; j < L; ++j) {
            one.largest = largest[j] > one.largest ? largest[j] : one.largest;
            one.smallest_less_one = smallest_less_one[j] < one.smallest_less_one ? smallest_less_one[j] : one.smallest_less_one;
        }
        return one;
    }
    /// The largest magnitude, as a double per lane.
    D top() const {
        if constexpr (L == 1) return double(largest);
        else return __builtin_convertvector(largest, D);
    }
    /// Whether N terms with these magnitudes add to a bias of bias_for<N>(top()) exactly,
    /// in every lane.
    template <int N> bool exact_sums() const {
        static_assert(Chunks == 1);
        constexpr int log2_8N = std::bit_width(unsigned(8 * N)) - 1;
        static_assert((8 * N) == (1 << log2_8N), "N a power of two");
        U vb;
        std::memcpy(&vb, &largest, sizeof vb);
        const I least = I((vb & 0x7f800000u) >> 23) - (29 - log2_8N); // the least exponent field
        const I f = I(((smallest_less_one + 1u) & 0x7f800000u) >> 23); // 0 for no nonzero term
        const I ok = I((smallest_less_one + 1u) == 0u) | I(f >= least);
        if constexpr (L == 1) return ok != 0;
#if defined(__AVX__) // the lanes' sign bits at once (GCC 12 tests lane by lane, two vector operations each)
        else if constexpr (L == 8) return _mm256_movemask_ps(std::bit_cast<__m256>(ok)) == 0xff;
        else if constexpr (L == 4) return _mm_movemask_ps(std::bit_cast<__m128>(ok)) == 0xf;
#endif
        else {
            for (int j = 0; j < L; ++j)
                if (ok[j] == 0) return false;
            return true;
        }
    }
};

/// For the centred biased sums (of x − K): whether x − K is exact for every x of a tile
/// whose values lie in [lo, hi], which Sterbenz's lemma gives when they are all within
/// [K/2, 2K] (or [2K, K/2]); else NaN in place of the tile's largest |x − K|, which
/// poisons its sums, so that the channel's certificate fails. K = 0 subtracts nothing.
template <class D> inline D centred_magnitude(D lo, D hi, D K) {
    const D half = 0.5 * K, twice = 2.0 * K;
    const auto ok = ((smaller(half, twice) <= lo) & (hi <= larger(half, twice))) | (K == 0.0);
    const D nan = D{} + NAN; // (D = v8d too)
    return ok ? larger(D(hi - K), D(K - lo)) : nan;
}

/// The first look at float64 values: their largest magnitude (NaN not taken); never the
/// float32 shortcut. (FloatLook for float32 data.)
template <class D> struct DoubleLook {
    D largest{};
    template <class T> void add(const T* p) { largest = max_magnitude(largest, lanes<D>(p, 0)); }
    D top() const { return largest; }
    template <int N> bool exact_sums() const { return false; }
    template <int P> const DoubleLook& chunk() const { return *this; }
};

/// The first look at values to be summed centred on K: their largest and smallest.
template <class D> struct CentredLook {
    D hi = D{} - INFINITY, lo = D{} + INFINITY;
    template <class T> void add(const T* p) {
        const D v = lanes<D>(p, 0);
        hi = larger(hi, v), lo = smaller(lo, v);
    }
    D top() const { return larger(D(-lo), hi); } // the largest |x|
    template <int N> bool exact_sums() const { return false; }
    template <int P> const CentredLook& chunk() const { return *this; }
};

} // namespace
} // namespace bnorm::kernels
