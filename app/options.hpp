// The options every subcommand takes (--x, --norm, --groups, --eps, --axis, --shape,
// --dtype, --allow-nonfinite, --threads) and the strict parsing of option values.
#pragma once

#include "bnorm/array.hpp"
#include "bnorm/batchnorm.hpp"

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

namespace bnorm::app {

struct CommonOptions {
    std::string x;
    std::string eps = "1e-5";
    std::string norm = "batch"; // batch|layer|rms|instance|group (norm_options.hpp)
    std::string groups;         // G, for --norm group only
    std::string axis; // parsed strictly (no hex, no spaces) by load_problem; empty: the norm's default
    std::string shape;  // "8,3,5,7", for CSV x and dy
    std::string dtype;  // "float32" | "float64" | "float16" | "bfloat16", for CSV inputs; NPY files carry theirs
    bool allow_nonfinite = false;
    std::string threads = "0"; // 0: all cores; results do not depend on it (see thread_count)
    // add_mode_options: --mode train|eval and the running statistics (C values each)
    std::string mode = "train";
    std::string running_mean, running_var;
    bool eval() const { return mode == "eval"; }
};

/// Refuses an empty value ("--dy ''"): an empty path or number is a mistake, never "not given".
extern const CLI::Validator NonEmpty;

/// Registers --x, --norm, --groups, --eps, --axis, --shape, --dtype, --allow-nonfinite
/// and --threads on `cmd`.
void add_common_options(CLI::App& cmd, CommonOptions& opts);

/// Registers --gamma and --beta, the affine parameters (forward, gradcheck, compare).
void add_affine_options(CLI::App& cmd, std::string& gamma, std::string& beta);

/// Registers --mode, --running-mean and --running-var on `cmd` (forward, backward,
/// gradcheck). `training_use`: what the running statistics are for in train mode (forward:
/// the update), empty when they are used only with --mode eval.
void add_mode_options(CLI::App& cmd, CommonOptions& opts, const std::string& training_use = "");

/// The rules of --mode across options, before anything is read: eval needs both running
/// files; train refuses them unless `training_use` (forward with --new-running-*).
void check_mode_options(const CommonOptions& opts, bool training_use);

/// Which of forward's (and compare's) options around the running statistics were given:
/// --mean/--invstd (the batch statistics), --new-running-mean/--new-running-var (the
/// update) and --momentum/--running-var-correction (its parameters).
struct RunningOptionsGiven {
    bool batch_stats, update, update_params;
};

/// The rules of --mode across those options (after check_mode_options): eval computes no
/// batch statistics and updates nothing; train takes --running-mean/--running-var only to
/// update them, and both; the update's parameters need an update.
void check_running_options(const CommonOptions& opts, RunningOptionsGiven given);

/// --momentum (default 0.1, in [0, 1]) and --running-var-correction (default 1; 0 or 1),
/// strictly, as given (empty: absent).
RunningUpdate parse_running_update(const std::string& momentum, const std::string& correction);

/// Adds NonEmpty to every option of `cmd` that takes a value (call after adding them all).
void refuse_empty_values(CLI::App& cmd);

/// --threads as a number: a decimal integer from 0 (all cores) to 4096.
int thread_count(const CommonOptions& opts);

/// Parses a decimal integer option value strictly ("1x", "0x1", " 1" fail).
int parse_int(const std::string& option, const std::string& text);

/// Parses a strictly numeric option value: a finite number >= 0 ("--rtol", "1e-9x" fails).
double parse_nonnegative(const std::string& option, const std::string& text);

/// --shape as a shape: none for the empty text, else non-negative decimal integers
/// separated by commas ("8,3,5,7"), strictly (no spaces, no signs). Throws UsageError.
std::optional<Shape> parse_shape(const std::string& text);

} // namespace bnorm::app
