// Loading and validating the inputs of one problem of the family.
#include "problem.hpp"

#include "norm_options.hpp"

#include "bnorm/error.hpp"
#include "bnorm/files.hpp"
#include "bnorm/half.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace bnorm::app {
namespace {

std::string index_to_string(std::int64_t flat, const Shape& shape) {
    Shape idx(shape.size());
    for (std::size_t d = shape.size(); d-- > 0;) {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    return shape_to_string(idx);
}

} // namespace

/// Refuses NaN and ±inf, naming the first offending index. Chunks are scanned without
/// branches on the exponent bits (all ones: NaN or ±inf), which vectorizes; only a chunk
/// with a bad value is searched.
void check_finite(const Array& a, const std::string& path) {
    dispatch(a.dtype(), [&](auto t) {
        using T = decltype(t);
        using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
        constexpr Bits kExponent = Bits(sizeof(T) == 4 ? 0x7f800000u : 0x7ff0000000000000u); // all ones
        constexpr std::int64_t kChunk = 4096;
        const T* v = a.data<T>();
        for (std::int64_t begin = 0; begin < a.size(); begin += kChunk) {
            const std::int64_t end = std::min(a.size(), begin + kChunk);
            Bits bad = 0;
            for (std::int64_t i = begin; i < end; ++i) {
                Bits b;
                std::memcpy(&b, v + i, sizeof b);
                bad |= (b & kExponent) == kExponent;
            }
            if (!bad) continue;
            for (std::int64_t i = begin; i < end; ++i)
                if (!std::isfinite(v[i]))
                    throw InputError::in_file(
                        path, fmt::format("non-finite value {} at index {}; use --allow-nonfinite to let "
                                          "it propagate",
                                          v[i], index_to_string(i, a.shape())));
        }
    });
}

namespace {

void check_dtype(const Array& a, DType want, const std::string& path, const std::string& x_path,
                 bool float32_too = false) {
    if (float32_too && is_half(want) && a.dtype() == DType::f32) return;
    if (a.dtype() != want && float32_too && is_half(want))
        throw InputError::in_file(path, fmt::format("dtype {} differs from {}'s {}; save it as {} or float32",
                                                    dtype_name(a.dtype()), x_path, dtype_name(want), dtype_name(want)));
    if (a.dtype() != want)
        throw InputError::in_file(path, fmt::format("dtype {} differs from {}'s {}; save both with "
                                                    "the same dtype",
                                                    dtype_name(a.dtype()), x_path, dtype_name(want)));
}

/// A running variance is >= 0, and in inference mode (eps given) var + eps > 0: else an
/// error naming the file and the channel. NaN passes here (require_finite refuses it).
void check_running_var(const Array& var, const std::string& path, std::optional<double> eps) {
    dispatch(var.dtype(), [&](auto t) {
        using T = decltype(t);
        const T* v = var.data<T>();
        for (std::int64_t c = 0; c < var.size(); ++c) {
            if (v[c] < 0)
                throw InputError::in_file(path, fmt::format("channel {} has a negative running variance {}; a "
                                                            "variance is >= 0",
                                                            c, v[c]));
            if (eps && double(v[c]) + *eps == 0)
                throw InputError::in_file(path, fmt::format("channel {} has running variance 0 and eps = 0: "
                                                            "1/sqrt(running_var + eps) is infinite (use eps > 0)",
                                                            c));
        }
    });
}

} // namespace

DType output_dtype(const Problem& p, bool like_x) {
    if (!is_half(p.dtype)) return p.dtype;
    return like_x ? p.dtype : DType::f32;
}

Array output_array(const Problem& p, const Array& a, bool like_x) {
    const DType t = output_dtype(p, like_x);
    return t == a.dtype() ? a : round_array(a, t);
}

namespace {

/// In a half-precision problem, every array widened to float64 (exactly); else as read.
Array for_engine(Array a, const Problem& p) { return is_half(p.dtype) ? widen_to_f64(a) : a; }

} // namespace

Array load_like_x(const std::string& path, const Problem& p, const std::string& x_path) {
    Array a = load_array(path, CsvRead{p.dtype, p.x.shape(), "x's shape", p.threads});
    check_dtype(a, p.dtype, path, x_path);
    if (a.shape() != p.x.shape())
        throw InputError::in_file(path, fmt::format("shape {} differs from x's shape {}",
                                                    shape_to_string(a.shape()), shape_to_string(p.x.shape())));
    return for_engine(std::move(a), p);
}

Array load_per_channel(const std::string& path, const Problem& p, const std::string& x_path) {
    Array v = load_array(path, CsvRead{p.dtype, std::nullopt, "--shape", p.threads});
    check_dtype(v, p.dtype, path, x_path, true);
    v = for_engine(std::move(v), p);
    const Shape& s = v.shape();
    const bool vector_like = s.size() == 1 || (s.size() == 2 && (s[0] == 1 || s[1] == 1));
    if (!vector_like || v.size() != p.layout.channels)
        throw InputError::in_file(
            path, fmt::format("expected {} values (C, the size of axis {} of x {}), found shape {}",
                              p.layout.channels, p.axis, shape_to_string(p.x.shape()),
                              shape_to_string(s)));
    v.reshape({p.layout.channels});
    return v;
}

Array load_params(const std::string& path, const std::string& option, const Problem& p,
                  const std::string& x_path) {
    if (p.norm.norm == Norm::batch) return load_per_channel(path, p, x_path);
    Array v = load_array(path, CsvRead{p.dtype, std::nullopt, "--shape", p.threads});
    check_dtype(v, p.dtype, path, x_path, true);
    v = for_engine(std::move(v), p);
    const Shape& want = p.norm.param_shape;
    const Shape& s = v.shape();
    const bool vector_like = s.size() == 1 || (s.size() == 2 && (s[0] == 1 || s[1] == 1));
    // A CSV file is a table: a γ of rank 3 or more comes as one row per index of its first
    // axis, as x does.
    const bool csv_table = format_of(path) == Format::csv && want.size() > 2 && s.size() == 2 && s[0] == want[0];
    if (v.size() != p.norm.params || !(s == want || vector_like || csv_table)) {
        const std::string name(norm_name(p.norm.norm));
        const std::string x_shape = shape_to_string(p.x.shape());
        if (p.norm.norm == Norm::layer || p.norm.norm == Norm::rms)
            throw InputError::in_file(
                path, fmt::format("{} of --norm {} must have shape {}, x.shape[{}:] of x {} (or its {} values in "
                                  "one row or column), found shape {}",
                                  option, name, shape_to_string(want), p.norm.axis, x_shape, p.norm.params,
                                  shape_to_string(s)));
        throw InputError::in_file(path, fmt::format("{} of --norm {} must have shape {}, one value per channel (C = "
                                                    "{}, axis {} of x {}), found shape {}",
                                                    option, name, shape_to_string(want), p.norm.channels,
                                                    p.norm.axis, x_shape, shape_to_string(s)));
    }
    v.reshape(want);
    return v;
}

Problem load_problem(const CommonOptions& opts, const std::string& gamma, const std::string& beta,
                     const std::string& dy, const NamedPaths& outputs, const NamedPaths& extra_inputs,
                     const NamedPaths& other_outputs) {
    NamedPaths inputs{{"--x", opts.x}};
    for (const auto& e : extra_inputs)
        if (!e.second.empty()) inputs.push_back(e);
    if (!gamma.empty()) inputs.emplace_back("--gamma", gamma);
    if (!beta.empty()) inputs.emplace_back("--beta", beta);
    if (!dy.empty()) inputs.emplace_back("--dy", dy);
    if (!opts.running_mean.empty()) inputs.emplace_back("--running-mean", opts.running_mean);
    if (!opts.running_var.empty()) inputs.emplace_back("--running-var", opts.running_var);
    NamedPaths outs;
    for (const auto& o : outputs)
        if (!o.second.empty()) outs.push_back(o);
    for (const auto& path : inputs) format_of(path.second);
    for (const auto& path : outs) format_of(path.second);
    for (const auto& o : other_outputs)
        if (!o.second.empty()) outs.push_back(o);
    check_paths(inputs, outs);

    Problem p;
    const NormChoice choice = parse_norm_choice(opts);
    p.eps = parse_nonnegative("--eps", opts.eps);
    const bool axis_given = !opts.axis.empty(); // else the norm's default, once x's rank is known
    const int axis = axis_given ? parse_int("--axis", opts.axis) : 0;
    p.threads = thread_count(opts); // refused before any work, like every other option
    const std::optional<Shape> shape = parse_shape(opts.shape);
    const DType csv_dtype = opts.dtype == "float32"    ? DType::f32
                            : opts.dtype == "float16"  ? DType::f16
                            : opts.dtype == "bfloat16" ? DType::bf16
                                                       : DType::f64;

    p.x = load_array(opts.x, CsvRead{csv_dtype, shape, "--shape", p.threads});
    if (!opts.dtype.empty() && format_of(opts.x) == Format::npy && p.x.dtype() != csv_dtype)
        throw UsageError(fmt::format("--dtype {} contradicts {}, which is {} (--dtype is for CSV "
                                     "inputs, and --dtype bfloat16 for '<u2' bit patterns)",
                                     opts.dtype, opts.x, dtype_name(p.x.dtype())));
    p.dtype = p.x.dtype();
    p.x = for_engine(std::move(p.x), p);
    if (shape && format_of(opts.x) == Format::npy && *shape != p.x.shape())
        throw UsageError(fmt::format("--shape {} contradicts {}, whose shape is {} (--shape is for CSV "
                                     "inputs)",
                                     shape_to_string(*shape), opts.x, shape_to_string(p.x.shape())));
    p.eval = opts.eval();
    // The norm's default as ONNX states it: 1, or -1 (the last axis) for layer and rms,
    // which messages and the gradcheck report then show as -1.
    p.axis = axis_given ? axis : default_axis_option(choice.norm);
    if (choice.norm == Norm::batch) { // its own messages, and its own paths (Layout)
        p.layout = check_problem(p.x.shape(), p.axis, opts.x, p.eval ? 1 : 2); // eval: a batch of one is fine
        p.norm = check_norm_problem(p.x.shape(), Norm::batch, p.axis, 0, opts.x, p.eval ? 1 : 2);
    } else {
        p.norm = check_norm_problem(p.x.shape(), choice.norm, p.axis, choice.groups, opts.x);
    }

    if (!gamma.empty()) p.gamma = load_params(gamma, "--gamma", p, opts.x);
    if (!beta.empty()) p.beta = load_params(beta, "--beta", p, opts.x);
    if (!dy.empty()) p.dy = load_like_x(dy, p, opts.x);
    if (!opts.running_mean.empty()) p.running_mean = load_per_channel(opts.running_mean, p, opts.x);
    if (!opts.running_var.empty()) p.running_var = load_per_channel(opts.running_var, p, opts.x);
    p.running_mean_path = opts.running_mean, p.running_var_path = opts.running_var;
    p.x_path = opts.x, p.gamma_path = gamma, p.beta_path = beta, p.dy_path = dy;
    p.allow_nonfinite = opts.allow_nonfinite;
    return p;
}

void require_finite(const Problem& p, bool proven) {
    if (!p.allow_nonfinite) {
        if (!proven) check_finite(p.x, p.x_path);
        if (p.gamma) check_finite(*p.gamma, p.gamma_path);
        if (p.beta) check_finite(*p.beta, p.beta_path);
        if (p.dy && !proven) check_finite(*p.dy, p.dy_path);
        if (p.running_mean) check_finite(*p.running_mean, p.running_mean_path);
        if (p.running_var) check_finite(*p.running_var, p.running_var_path);
    }
    if (p.running_var) // after the NaN checks, as a zero variance with eps = 0 comes after them
        check_running_var(*p.running_var, p.running_var_path, p.eval ? std::optional<double>(p.eps) : std::nullopt);
}

void rethrow_for_file(const std::string& path) {
    try {
        throw;
    } catch (const InputError& e) {
        throw InputError::in_file(path, e.what());
    }
}

} // namespace bnorm::app
