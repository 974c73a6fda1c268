// Loading and validating the inputs of one problem of the family (batch, layer, rms,
// instance or group norm): x, the optional γ, β and dy, the paths checked before any
// work, and the rules across files.
#pragma once

#include "options.hpp"

#include "bnorm/array.hpp"
#include "bnorm/error.hpp"
#include "bnorm/family.hpp"
#include "bnorm/layout.hpp"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bnorm::app {

/// The validated inputs of one problem.
struct Problem {
    int axis = 1;       ///< --axis as given (may be negative), or the norm's default
    /// x's dtype in its file. float16/bfloat16: every input is widened to float64 on
    /// loading (exactly), the float64 engine runs, y and dx are rounded once to this dtype
    /// and the statistics and γ/β gradients to float32 (output_dtype).
    DType dtype = DType::f64;
    Array x;
    NormProblem norm;   ///< which sets share statistics and parameters (any norm)
    Layout layout;      ///< batch norm's collapse of x (zeros for the other norms)
    double eps = 0;
    std::optional<Array> gamma, beta, dy;
    std::optional<Array> running_mean, running_var;     ///< --running-mean, --running-var
    bool eval = false;                                  ///< --mode eval
    std::string x_path, gamma_path, beta_path, dy_path; ///< for messages
    std::string running_mean_path, running_var_path;
    bool allow_nonfinite = false;                       ///< --allow-nonfinite
    int threads = 0;                                    ///< --threads (0: all cores), to read CSV inputs
};

/// The dtype an output is written in: x's, except in a half-precision problem, where y
/// and dx (`like_x`) are in x's half type and the statistics and γ/β gradients in float32
/// (PyTorch's and ONNX's stash_type = 1).
DType output_dtype(const Problem& p, bool like_x);

/// `a`, an output computed in x's engine dtype, rounded once to output_dtype(p, like_x)
/// (unchanged when that is its dtype already).
Array output_array(const Problem& p, const Array& a, bool like_x);

/// Input and output paths by option name, for check_paths and messages.
using NamedPaths = std::vector<std::pair<std::string, std::string>>;

/// Checks the paths (check_paths), parses --norm/--groups/--eps/--axis/--shape/--dtype
/// strictly, loads x and the optional γ, β, dy (empty path = not given), and checks every
/// cross-file rule: rank, axis, sets of m >= 2 (m >= 1 for batch norm with --mode eval),
/// γ/β of the norm's parameter shape (load_params), the running statistics of length C,
/// dy shape and dtype equal to x's (finite values and the running variance's rules:
/// require_finite). Throws bnorm::Error subclasses with one-line messages.
/// `outputs` are array outputs (.npy/.csv); `extra_inputs` further array inputs loaded by
/// the caller; `other_outputs` outputs of another type (a JSON report). All are checked
/// by check_paths before anything is read.
Problem load_problem(const CommonOptions& opts, const std::string& gamma, const std::string& beta,
                     const std::string& dy, const NamedPaths& outputs, const NamedPaths& extra_inputs = {},
                     const NamedPaths& other_outputs = {});

/// Loads a tensor that must have x's shape and dtype (dy, a given dx). CSV is read in x's
/// dtype and shape. In a half-precision problem the array comes back widened to float64,
/// as do those of load_per_channel and load_params, which there also accept float32.
Array load_like_x(const std::string& path, const Problem& p, const std::string& x_path);

/// Loads C values (the running statistics; batch norm's γ, β, dγ, dβ): a 1-d array, or
/// one row or one column.
Array load_per_channel(const std::string& path, const Problem& p, const std::string& x_path);

/// Loads the values of γ, β or a given dγ, dβ (`option` names it in messages), reshaped to
/// p.norm.param_shape: for batch norm as load_per_channel; instance and group: C values
/// as well; layer and rms: an array of shape x.shape[axis:], or its values in one row or
/// one column (a flat vector), or a CSV table of one row per index of its first axis.
/// Refuses any other shape with an InputError naming the file, the expected and the
/// found shape.
Array load_params(const std::string& path, const std::string& option, const Problem& p,
                  const std::string& x_path);

/// Refuses NaN and ±inf, naming the file and the first index.
void check_finite(const Array& a, const std::string& path);

/// Refuses NaN and ±inf in x, γ, β, dy and the running statistics (in that order) unless
/// --allow-nonfinite, naming the file and the first index. `proven`: a pass over x and dy
/// has shown there are none in them (ForwardPass::inputs_proven_finite), which spares
/// reading them again. Then refuses a negative running variance (and, with --mode eval,
/// running var + eps == 0), naming the file and the channel, with or without
/// --allow-nonfinite.
void require_finite(const Problem& p, bool proven = false);

/// Re-throws an error raised by the library for the data of file `path` with the file
/// name in front, so that every message names its file.
[[noreturn]] void rethrow_for_file(const std::string& path);

/// Runs step(), a call into the library on p's data, giving an InputError it throws the
/// name of x's file; a NaN or an infinity in the inputs is reported first, as the cause.
template <class Step> decltype(auto) about_x(const Problem& p, Step&& step) {
    try {
        return step();
    } catch (const InputError&) {
        require_finite(p);
        rethrow_for_file(p.x_path);
    }
}

} // namespace bnorm::app
