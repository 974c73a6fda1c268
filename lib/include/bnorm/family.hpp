// The normalization family: batch, layer, RMS, instance and group norm. Each is batch
// norm over other sets of elements, with its affine step indexed differently, and each
// runs on the same engine (statistics by the certified pass A, outputs rounded once).
//
// The definitions, with x̂ = (x − mean)·invstd and invstd = 1/sqrt(var + eps), var the
// biased variance of a set (ONNX LayerNormalization-17, GroupNormalization-21,
// InstanceNormalization-22, RMSNormalization-23; PyTorch's F.layer_norm, F.group_norm,
// F.instance_norm):
//
//   norm      one set of statistics per         γ, β indexed by         mean, invstd shape
//   batch     channel (every axis but `axis`)    channel: (C)            (C)
//   instance  (sample, channel); axes ≠ 0, axis  channel: (C)            (N, C)
//   group     (sample, group of C/G channels)    channel: (C)            (N, G)
//   layer     index of shape[:axis]              shape[axis:]            shape[:axis] + ones
//   rms       as layer; no mean subtracted:      shape[axis:]; no β      as layer; no mean
//             invstd = 1/sqrt(mean(x²) + eps), y = γ·x·invstd
//
// Backward gives the gradients of f = Σ dy ⊙ y (docs/derivation.md derives each):
//   dx = invstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) over each set, dx̂ = γ·dy
//        (rms: invstd·(dx̂ − x̂·mean(dx̂·x̂)), x̂ = x·invstd)
//   dγ = Σ dy·x̂ and dβ = Σ dy over the elements that share the parameter.
//
// Accuracy, threads and requirements as batchnorm.hpp says, with sets for channels:
// every output within a few ulps of T of the exact value, normwise; the same bits for
// any thread count.
#pragma once

#include "bnorm/layout.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace bnorm {

enum class Norm { batch, layer, rms, instance, group };

/// "batch", "layer", "rms", "instance", "group": the values of --norm.
std::string_view norm_name(Norm n);

/// The inverse of norm_name; throws UsageError naming `option`, the value and the valid
/// values.
Norm parse_norm(std::string_view text, std::string_view option = "--norm");

/// The axis --axis means when not given: the channel axis 1 for batch, instance and
/// group; the last axis (−1, resolved against the rank) for layer and rms.
int default_axis(Norm n, std::size_t rank);

/// One problem of the family, resolved against x's shape.
///
/// The elements of x (C-contiguous) are, per norm:
///   batch, instance, group: (N·P, C, inner) around the channel axis `axis`, with N =
///     shape[0], P = prod(shape[1:axis]) and inner = prod(shape[axis+1:]);
///   layer, rms: (sets, per_set) with sets = prod(shape[:axis]).
struct NormProblem {
    Norm norm = Norm::batch;
    Shape shape;             ///< x's shape
    int axis = 1;            ///< resolved, 0 ≤ axis < rank
    std::int64_t groups = 0; ///< group: G (divides C); 0 for the others
    std::int64_t sets = 0;   ///< how many sets of statistics (the count of mean, invstd)
    std::int64_t per_set = 0;    ///< m, the elements of one set
    std::int64_t params = 0;     ///< the count of γ, β, dγ, dβ
    Shape param_shape;       ///< γ's shape: (C), or shape[axis:] for layer and rms
    Shape stat_shape;        ///< mean's and invstd's shape as PyTorch and ONNX save them
    /// N, P, C, inner as above for instance and group; batch: 1, outer, C, inner (its
    /// Layout); layer and rms: 1, 1, 1, size().
    std::int64_t samples = 1, middle = 1, channels = 1, inner = 1;

    std::int64_t size() const { return sets * per_set; }
};

/// Checks that `norm` over `shape` along `axis` (negative counts from the end) with
/// `groups` is defined and resolves it. Refuses, with one line naming the option or `what`
/// (x's file name) and the values: an axis out of range; axis 0 for instance and group
/// (the sample axis); --groups missing, given for another norm, or not dividing C; an
/// empty tensor; sets of fewer than `min_per_set` elements (naming the norm and the axis
/// that make them so). UsageError for the options, InputError for the shape.
NormProblem check_norm_problem(std::span<const std::int64_t> shape, Norm norm, int axis, std::int64_t groups,
                               const std::string& what, std::int64_t min_per_set = 2);

/// Forward pass of any norm (training mode: the statistics of x's own sets).
/// gamma == nullptr means γ = 1, beta == nullptr β = 0; both cover p.params values.
/// mean and invstd cover p.sets values and may be nullptr; rms has no mean (pass
/// nullptr) and no β (pass nullptr): UsageError otherwise. y covers p.size() values.
/// Throws InputError, before writing any output, when var + eps == 0 for some set.
template <class T>
void forward(const T* x, const T* gamma, const T* beta, const NormProblem& p, double eps, T* y, T* mean, T* invstd,
             int threads = 0);

/// Backward pass of any norm: the gradients of f = Σ dy ⊙ y for the forward pass above,
/// the statistics recomputed from x. dgamma and dbeta cover p.params values and may be
/// nullptr (rms: dbeta must be nullptr); dx is always written.
template <class T>
void backward(const T* x, const T* gamma, const T* dy, const NormProblem& p, double eps, T* dx, T* dgamma, T* dbeta,
              int threads = 0);

} // namespace bnorm
