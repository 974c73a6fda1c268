// The state of the pass objects (ForwardPass, BackwardPass): what pass A leaves for pass B,
// per channel. forward() and backward() use it directly, a group of channels at a time.
//
//   pass A (one read of x, and of dy for backward): per block, sums of x − K, (x − K)²
//          (and dy, dy·(x − K)) around a reference K per channel, compensated; the
//          blocks' sums become Moments merged per channel with Chan's formula in
//          double-double, in block order. Threads take whole blocks: the result does not
//          depend on the thread count. Channels-last blocks are summed by tiles of
//          kTileRows rows, chunk of channels by chunk with the accumulators in
//          registers, the next tile prefetched; runs (NCHW) lane by lane.
//   pass B (one read of x (and dy), one write of y (dx)): elementwise, in parallel.
//
// Precision (docs/derivation.md): error-free transformations (two_sum, two_prod,
// compensated sums) exactly where cancellation can occur: the centring x − mean (mean
// carried in double-double), the sums behind the mean, M2, dβ and dγ, and the three-term
// difference of dx. Pass A first sums with a cheaper kernel, checked channel by channel
// by a certificate: plain double sums for float32 data, biased sums (exact Fast2Sum
// steps against a power-of-two bias, uncentred) for float64; a channel whose certificate
// fails (heavy-tailed data with a dy nearly linear in x, float64 data far from zero
// against its spread) is summed again with the error-free kernels. float64 data whose
// magnitude is outside [2^-400, 2^480], and non-finite data, go to the all-double-double
// kernels of batchnorm_exact.cpp instead.
#pragma once

#include "bnorm/batchnorm.hpp"
#include "bnorm/detail/kept.hpp"
#include "bnorm/layout.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace bnorm::detail {

/// Pass B's per-channel coefficients given by the caller instead of pass A's: the family's
/// sets (family_sets.cpp), whose statistics span several channels of the layout. Arrays of
/// l.channels doubles; y = a·(x − μ) + β, dx = a·(dy − B − (x − μ)·H) (μ, a, B, H in
/// double-double as hi + lo).
struct GivenForward {
    const double *mu_hi, *mu_lo, *a_hi, *a_lo, *beta;
    /// Bytes of the caller's whole y, of which this is a piece: y is streamed past the
    /// caches when they are at least stream_from (0: this piece's own bytes, and
    /// detail::stream_threshold()).
    std::int64_t stream_bytes = 0, stream_from = 0;
};
struct GivenBackward {
    const double *mu_hi, *mu_lo, *a_hi, *a_lo, *B_hi, *B_lo, *H_hi, *H_lo;
    const char* careful; ///< float32: per channel, dx in double-double (it cancels); ignored for float64
    /// Bytes of the caller's whole dx, of which this is a piece: dx is streamed past the
    /// caches when they are at least stream_from (0: this piece's own bytes, and
    /// detail::stream_threshold()).
    std::int64_t stream_bytes = 0, stream_from = 0;
};

/// ForwardPass's state. The second constructor takes channels [c0, c0 + l.channels) of a
/// tensor of `whole` channels (else like the first, with x, γ and β of the whole tensor):
/// the same bits for them as a pass over the whole tensor. forward() runs large (N, C, L)
/// tensors this way, a few channels at a time while they are in cache. Requires
/// l.inner > 1.
template <class T> struct ForwardState {
    ForwardState(const T* x, const T* gamma, const T* beta, const Layout& l, std::int64_t whole, std::int64_t c0,
                 double eps, int threads);
    void statistics(T* mean, T* invstd) const;
    void apply(std::int64_t o0, std::int64_t o1, T* y) const;
    bool inputs_proven_finite() const;
    void run_exact() const; // once, before the first use of the exact kernel's channels

    const T *x_, *gamma_, *beta_;
    Layout l_;
    std::int64_t whole_;               // the channels of the tensor x_ is in (l_.channels but for groups)
    double eps_;
    int threads_;
    // per channel: μ (hi, lo), γ·invstd (hi, lo), β; inference mode also float32's
    // cancel_threshold(β); training mode also M2 = Σ (x − mean)²
    // (hi, lo) of the fast channels and whether it is certified to T's precision (1 or 0),
    // for update_running (no second read of x for those)
    std::vector<double, Kept<double>> coefficients_;
    std::vector<char> fast_;           // per channel: computed by the fast path
    mutable std::vector<T> mean_, invstd_;
    mutable std::vector<T> exact_;     // y from the exact kernel, when a channel needs it
    mutable std::once_flag exact_done_;
    bool eval_ = false; // inference mode
    std::int64_t stream_bytes_ = 0, stream_from_ = 0; // GivenForward's

    /// Inference mode (running.cpp): μ = running mean, a = γ/sqrt(running var + eps) in
    /// double-double, β: pass B alone, with no pass A. Throws InputError for a negative
    /// running variance or running var + eps == 0, naming the channel. Allows m = 1.
    ForwardState(const T* x, const T* gamma, const T* beta, RunningStats<T> running, const Layout& l, double eps,
                 int threads);
    /// Pass B alone with the coefficients k (given_coefficients.cpp): training mode's
    /// formulas (float32 y in double, float64 in double-double), no statistics() (k
    /// says nothing of them), every channel fast. x is (l.outer, l.channels, l.inner).
    ForwardState(const T* x, const Layout& l, const GivenForward& k, int threads);
    /// update_running (running.cpp).
    void update_running(RunningStats<T> running, RunningUpdate u, T* new_mean, T* new_var) const;
};

/// Refuses what update_running cannot do, before any output is written: momentum outside
/// [0, 1] or correction not 0 or 1 (UsageError), m ≤ correction or a negative running
/// variance (InputError, naming the channel). running.var covers l.channels values.
template <class T> void check_running_update(RunningStats<T> running, RunningUpdate u, const Layout& l, double eps);

/// BackwardPass's state; the constructor like ForwardState's.
template <class T> struct BackwardState {
    BackwardState(const T* x, const T* gamma, const T* dy, const Layout& l, std::int64_t whole, std::int64_t c0,
                  double eps, int threads);
    void gradients(T* dgamma, T* dbeta) const;
    void apply(std::int64_t o0, std::int64_t o1, T* dx) const;
    bool inputs_proven_finite() const;
    void run_exact() const; // once, before the first use of the exact kernel's channels

    const T *x_, *gamma_, *dy_;
    Layout l_;
    std::int64_t whole_;               // the channels of the tensor x_ is in (l_.channels but for groups)
    double eps_;
    int threads_;
    // per channel, hi and lo: μ, a = γ·invstd, B = dβ/m, H = invstd·dγ/m, K = B − μ·H
    std::vector<double, Kept<double>> coefficients_;
    std::vector<char> fast_;
    std::vector<char> careful_;        // per channel: dx with every error term (see apply)
    std::vector<char> offset_form_;    // per channel, float64: dx from the shorter form (see apply)
    std::vector<char> offset_form4_;   // offset_form_ of channels c..c+3 all
    mutable std::vector<T> dgamma_, dbeta_;
    mutable std::vector<T> exact_;     // dx from the exact kernel, when a channel needs it
    mutable std::once_flag exact_done_;

    /// Inference mode (running.cpp): dγ and dβ from error-free sums in double-double, and
    /// dx = a·dy by an inference-mode ForwardState over dy (μ = 0, a = γ/sqrt(var + eps),
    /// β = 0). Throws like ForwardState's inference constructor.
    BackwardState(const T* x, const T* gamma, const T* dy, RunningStats<T> running, const Layout& l, double eps,
                  int threads);
    /// Pass B alone with the coefficients k (given_coefficients.cpp): dx by the kernels of
    /// training mode, float64 in double-double (centred form), float32 in double or, for
    /// the channels k.careful marks, double-double; no gradients() (dγ, dβ are the
    /// caller's). x and dy are (l.outer, l.channels, l.inner).
    BackwardState(const T* x, const T* dy, const Layout& l, const GivenBackward& k, int threads);
    std::int64_t stream_bytes_ = 0, stream_from_ = 0; // GivenBackward's
    std::vector<T> zeros_;                       // the "running mean" of dx_: C zeros
    std::unique_ptr<ForwardState<T>> eval_dx_;   // inference mode: dx
};

} // namespace bnorm::detail
