// Training-mode batch normalization, forward and backward, on in-memory arrays.
//
// Notation (docs/derivation.md has the full derivation, step by step):
//   x is (outer, C, inner) (see layout.hpp); for channel c the sums run over the
//   m = outer*inner elements x[o, c, k];
//   mean   = (1/m) Σ x
//   var    = (1/m) Σ (x − mean)²            (biased variance, as in training)
//   invstd = 1 / sqrt(var + eps)
//   x̂      = (x − mean)·invstd
//   y      = γ·x̂ + β
// Backward gives the gradients of f = Σ dy ⊙ y:
//   dβ = Σ dy
//   dγ = Σ dy·x̂
//   dx = γ·invstd·(dy − (dβ + x̂·dγ)/m)
//      = (invstd/m)·(m·dx̂ − Σ dx̂ − x̂·Σ dx̂·x̂)  with dx̂ = γ·dy
//
// Accuracy: every output is within about one ulp of T of the exact value for the given
// input numbers (eps taken as the given double), on any conditioning of the data: the
// statistics and the sums behind dβ, dγ are carried to ~2^-100 relative (error-free
// transformations and double-double merges), dx's three terms are combined without loss,
// and each output is rounded once. Data beyond 2^-400..2^480 in magnitude and non-finite
// data go through an all-double-double kernel. docs/derivation.md has the details.
//
// Threads: `threads` = 0 uses all cores. The outputs are bitwise identical for any value.
// Tensors under 65536 values run on the calling thread. The others run on a pool of
// threads that the library starts on first use and keeps until the process ends (idle
// between calls, after polling for a fraction of a millisecond); a call made while another
// holds the pool (from another thread of the program) starts threads of its own. Calls
// from several threads at once are safe.
//
// Common requirements: l.channels >= 1 and l.per_channel() >= 2 (see check_problem);
// eps >= 0 and finite; pointers to x, dy, y, dx cover l.size() elements in
// (outer, C, inner) order; γ, β, mean, invstd, dγ, dβ cover l.channels elements.
// Outputs are assigned (never accumulated into) and must not overlap the inputs.
// Non-finite inputs propagate as IEEE arithmetic does (no exception).
#pragma once

#include "bnorm/layout.hpp"

#include <cstdint>
#include <memory>

namespace bnorm {

namespace detail { // the passes' state: lib/src/pass_state.hpp
template <class T> struct ForwardState;
template <class T> struct BackwardState;
} // namespace detail

/// Running statistics, as frameworks keep them for inference: l.channels values each.
/// Inference mode (PyTorch's F.batch_norm(training=False), ONNX BatchNormalization-15 with
/// training_mode = 0) normalizes with them instead of the batch statistics:
///   y = γ·(x − mean)/sqrt(var + eps) + β.
/// Requirements: every var[c] ≥ 0 and var[c] + eps > 0 (else InputError naming the channel,
/// thrown before any output is written); m = 1 (one value per channel) is allowed.
template <class T> struct RunningStats {
    const T* mean;
    const T* var;
};

/// How training updates the running statistics, with PyTorch's meaning of momentum:
///   new_mean = (1 − momentum)·mean + momentum·batch_mean
///   new_var  = (1 − momentum)·var + momentum·batch_var·m/(m − correction)
/// where batch_var is the biased variance (M2/m). correction = 1 is PyTorch's (the unbiased
/// batch variance); correction = 0 is ONNX BatchNormalization-15's (the population
/// variance), whose momentum m' is momentum = 1 − m'. PyTorch's cumulative average
/// (momentum=None) is momentum = 1/num_batches_tracked. Requires 0 ≤ momentum ≤ 1,
/// correction 0 or 1, and m > correction.
struct RunningUpdate {
    double momentum = 0.1;
    int correction = 1;
};

/// Inference-mode forward: y = γ·(x − running.mean)/sqrt(running.var + eps) + β, each
/// output rounded once from the exact value. Throws InputError as RunningStats says.
template <class T>
void forward_eval(const T* x, const T* gamma, const T* beta, RunningStats<T> running, const Layout& l, double eps,
                  T* y, int threads = 0);

/// Inference-mode backward, the statistics being constants:
///   dx = γ·dy/sqrt(running.var + eps),  dγ = Σ dy·x̂ with x̂ = (x − running.mean)/sqrt(running.var + eps),
///   dβ = Σ dy.
/// dgamma and dbeta may be nullptr.
template <class T>
void backward_eval(const T* x, const T* gamma, const T* dy, RunningStats<T> running, const Layout& l, double eps,
                   T* dx, T* dgamma, T* dbeta, int threads = 0);

/// Forward pass. gamma == nullptr means γ = 1, beta == nullptr means β = 0.
/// mean and invstd may be nullptr when not wanted; y is always written.
/// Throws InputError (before writing any output) when var + eps == 0 for some channel,
/// which happens only with eps = 0 and a constant channel; the message names it.
/// threads: 0 means all cores; the outputs are bitwise the same for any value.
template <class T>
void forward(const T* x, const T* gamma, const T* beta, const Layout& l, double eps, T* y,
             T* mean, T* invstd, int threads = 0);

/// Forward pass that also updates the running statistics (see RunningUpdate): the bits of
/// forward() and of ForwardPass::update_running, from the same read of x (large NCHW
/// tensors too, which forward() takes a group of channels at a time). new_mean and
/// new_var may be nullptr. Throws like forward() and update_running, before writing any
/// output.
template <class T>
void forward(const T* x, const T* gamma, const T* beta, RunningStats<T> running, RunningUpdate u, const Layout& l,
             double eps, T* y, T* mean, T* invstd, T* new_mean, T* new_var, int threads = 0);

/// Backward pass: the gradients of f = Σ dy ⊙ y(x, γ, β) for the forward pass above,
/// with the batch statistics recomputed from x (so that they carry full precision).
/// gamma == nullptr means γ = 1. dgamma and dbeta may be nullptr; dx is always written.
/// Throws InputError like forward().
template <class T>
void backward(const T* x, const T* gamma, const T* dy, const Layout& l, double eps, T* dx,
              T* dgamma, T* dbeta, int threads = 0);

/// The forward pass in two steps, for callers that produce y piece by piece (the CLI
/// streams it to its file through a small buffer, instead of page-faulting a full-size
/// output): the statistics when constructed (one read of x), then y for any range of
/// outer rows, in any order, from any threads. forward() is both steps at once, with the
/// same bits; it takes a large tensor with inner > 1 (NCHW) a group of channels at a
/// time, both steps of a group while its values are in cache, where the two steps over
/// the whole tensor read x from memory twice. x, γ and β must stay valid while the
/// object is used.
/// Throws like forward(): the constructor for the channels of the fast kernels; the first
/// call of statistics() or apply() for the others (when inputs_proven_finite() is false),
/// whose exact kernel runs then, so that a caller refusing non-finite data does not wait
/// for it.
template <class T> class ForwardPass {
public:
    ForwardPass(const T* x, const T* gamma, const T* beta, const Layout& l, double eps, int threads = 0);
    /// Inference mode: y from the running statistics (see forward_eval), no batch statistics.
    ForwardPass(const T* x, const T* gamma, const T* beta, RunningStats<T> running, const Layout& l, double eps,
                int threads = 0);
    /// The batch mean and invstd of every channel (either may be null); in inference mode,
    /// the running mean and 1/sqrt(running var + eps).
    void statistics(T* mean, T* invstd) const;
    /// Training mode only: the updated running statistics from the batch statistics of this
    /// pass (no second read of x), each rounded once from the exact value (either output
    /// may be null). Throws UsageError in inference mode and InputError for a negative
    /// running variance (naming the channel).
    void update_running(RunningStats<T> running, RunningUpdate u, T* new_mean, T* new_var) const;
    /// y of outer rows [o0, o1): (o1 − o0)·C·inner values in (outer, C, inner) order.
    void apply(std::int64_t o0, std::int64_t o1, T* y) const;
    /// True when every channel's statistics came out finite and in the fast kernels'
    /// range, which proves that x holds no NaN or infinity (a NaN or an infinity makes its
    /// channel's sums non-finite): a caller that refuses them need not read x again. False
    /// when some channel went to the exact kernel: a NaN or an infinity, or float64
    /// magnitudes beyond [2^-400, 2^480].
    bool inputs_proven_finite() const;

    ~ForwardPass();
    ForwardPass(ForwardPass&&) noexcept;
    ForwardPass& operator=(ForwardPass&&) noexcept;

private:
    std::unique_ptr<detail::ForwardState<T>> s_;
};

/// The backward pass in two steps, like ForwardPass: dγ and dβ when constructed (one
/// read of x and dy), then dx for any range of outer rows. x, γ and dy must stay valid
/// while the object is used. Throws like ForwardPass (gradients() and apply() for the
/// exact kernel's channels).
template <class T> class BackwardPass {
public:
    BackwardPass(const T* x, const T* gamma, const T* dy, const Layout& l, double eps, int threads = 0);
    /// Inference mode: the gradients of backward_eval.
    BackwardPass(const T* x, const T* gamma, const T* dy, RunningStats<T> running, const Layout& l, double eps,
                 int threads = 0);
    /// dγ and dβ of every channel (either may be null).
    void gradients(T* dgamma, T* dbeta) const;
    /// dx of outer rows [o0, o1): (o1 − o0)·C·inner values in (outer, C, inner) order.
    void apply(std::int64_t o0, std::int64_t o1, T* dx) const;
    /// Like ForwardPass::inputs_proven_finite, for x and dy.
    bool inputs_proven_finite() const;

    ~BackwardPass();
    BackwardPass(BackwardPass&&) noexcept;
    BackwardPass& operator=(BackwardPass&&) noexcept;

private:
    std::unique_ptr<detail::BackwardState<T>> s_;
};

} // namespace bnorm
