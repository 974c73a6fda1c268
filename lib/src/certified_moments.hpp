// Pass A, certified: the statistics of every channel, each from the cheapest sums whose
// certificate it passes (certified_moments.cpp).
#pragma once

#include "bnorm/layout.hpp"
#include "certificates.hpp"
#include "stats/moments.hpp"

#include <cstdint>
#include <vector>

namespace bnorm::kernels {

/// Pass A, in stages: every channel with the fast sums of T (plain for float32, biased
/// for float64); the channels whose certificate fails, again: float32 with float64's
/// biased sums (they keep ~2^-86 where plain sums keep 2^-48), float64 with the biased
/// sums centred on the channel's mean (for |μ| ≫ σ, where the uncentred ones lose
/// log2(1 + μ²/σ²) bits); those that still fail, error-free. A channel that fails the
/// first stage on a preview of its first rows starts at the second. how[c] tells where
/// channel c's moments come from. A channel's bits come from its own data only, whichever
/// stage its neighbours need.
/// `whole`: the channels of the tensor x is in (Blocks), 0 for l.channels.
template <class T, bool Backward>
MomentsVector certified_moments(const T* x, const T* dy, const Layout& l, std::int64_t whole, double eps, int threads,
                                std::vector<Certified>& how);

/// The channels `todo` of ms (l.channels Moments, as certified_moments gives them) summed
/// again with the error-free kernels (rel = 0), each with the bits certified_moments gives
/// a channel it sums error-free. For the family's sets (family_sets.cpp), whose sums add
/// several channels' sums, which may cancel beyond the certificate of each.
template <class T, bool Backward>
void exact_moments(const T* x, const T* dy, const Layout& l, std::int64_t whole, int threads,
                   const std::vector<std::int64_t>& todo, MomentsVector& ms);

} // namespace bnorm::kernels
