// The options every subcommand takes, and the strict parsing of option values.
#include "options.hpp"

#include "bnorm/error.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>

namespace bnorm::app {

std::optional<Shape> parse_shape(const std::string& text) {
    if (text.empty()) return std::nullopt;
    Shape shape;
    std::size_t pos = 0;
    while (true) {
        const std::size_t comma = std::min(text.find(',', pos), text.size());
        std::int64_t d = -1;
        const char* b = text.data() + pos;
        const char* e = text.data() + comma;
        const auto r = std::from_chars(b, e, d);
        if (b == e || r.ec != std::errc() || r.ptr != e || d < 0)
            throw UsageError(fmt::format("--shape '{}': expected non-negative integers separated "
                                         "by commas, like 8,3,5,7",
                                         text));
        shape.push_back(d);
        if (comma == text.size()) break;
        pos = comma + 1;
    }
    if (shape.size() > kMaxRank)
        throw UsageError(fmt::format("--shape '{}' has {} axes: at most {} (numpy before 2.0 reads no more)",
                                     text.size() > 40 ? text.substr(0, 40) + "…" : text, shape.size(), kMaxRank));
    if (element_count(shape) < 0) throw UsageError(fmt::format("--shape '{}' is too large", text));
    return shape;
}

int parse_int(const std::string& option, const std::string& text) {
    int v = 0;
    const char* end = text.data() + text.size();
    const auto r = std::from_chars(text.data(), end, v);
    if (!text.empty() && r.ec == std::errc::result_out_of_range && r.ptr == end)
        throw UsageError(fmt::format("{} {} is out of range", option, text));
    if (text.empty() || r.ec != std::errc() || r.ptr != end)
        throw UsageError(fmt::format("{} '{}' is not an integer", option, text));
    return v;
}

int thread_count(const CommonOptions& opts) {
    const int n = parse_int("--threads", opts.threads);
    if (n < 0 || n > 4096) throw UsageError(fmt::format("--threads {} must be from 0 (all cores) to 4096", n));
    return n;
}

namespace {

/// A number, strictly (the whole text; nan and inf included, for the caller to refuse).
double parse_number(const std::string& option, const std::string& text) {
    double v = 0;
    const char* end = text.data() + text.size();
    const auto r = std::from_chars(text.data(), end, v);
    if (!text.empty() && r.ec == std::errc::result_out_of_range && r.ptr == end)
        throw UsageError(fmt::format("{} {} is beyond the range of double (about 5e-324 to 1.8e308)", option, text));
    if (text.empty() || r.ec != std::errc() || r.ptr != end)
        throw UsageError(fmt::format("{} '{}' is not a number", option, text));
    return v;
}

} // namespace

double parse_nonnegative(const std::string& option, const std::string& text) {
    const double v = parse_number(option, text);
    if (!std::isfinite(v) || v < 0)
        throw UsageError(fmt::format("{} {} must be a finite number >= 0", option, text));
    return v;
}

const CLI::Validator NonEmpty(
    [](const std::string& value) { return value.empty() ? std::string("the value is empty") : std::string(); },
    "", "NonEmpty");

void add_common_options(CLI::App& cmd, CommonOptions& opts) {
    cmd.add_option("--x", opts.x, "Input tensor x (.npy or .csv), rank >= 2 (>= 1 for layer and rms)")->required();
    cmd.add_option("--eps", opts.eps, "Added to the variance before the square root: "
                                      "invstd = 1/sqrt(var + eps); a finite number >= 0")
        ->capture_default_str();
    cmd.add_option("--norm", opts.norm, "Which normalization: batch, layer, rms, instance or group (see the "
                                        "README for the sets each normalizes over)")
        ->capture_default_str();
    cmd.add_option("--groups", opts.groups, "G, the number of groups of --norm group (required with it; must "
                                            "divide C)");
    cmd.add_option("--axis", opts.axis, "An integer; negative counts from the end. batch, instance, group: the "
                                        "channel axis (default 1: NCHW / (N, C); -1: NHWC); layer, rms: the first "
                                        "normalized axis (default -1)");
    cmd.add_option("--shape", opts.shape, "Shape of x and dy when they are CSV files, e.g. 8,3,5,7 "
                                          "(default: rows x columns)");
    cmd.add_option("--dtype", opts.dtype, "dtype to read CSV inputs as (NPY files carry their own; bfloat16 also "
                                          "reads '<u2' NPY files as bfloat16 bit patterns)")
        ->check(CLI::IsMember({"float32", "float64", "float16", "bfloat16"}))
        ->default_str("float64");
    cmd.add_flag("--allow-nonfinite", opts.allow_nonfinite,
                 "Accept NaN and inf in the inputs and let them propagate (refused by default)");
    cmd.add_option("--threads", opts.threads, "Threads (default 0: all cores); the outputs are bitwise the same "
                                              "for any number")
        ->capture_default_str();
}

void add_affine_options(CLI::App& cmd, std::string& gamma, std::string& beta) {
    cmd.add_option("--gamma", gamma, "Scale γ, C values; layer, rms: of shape x.shape[axis:] (default: ones)");
    cmd.add_option("--beta", beta, "Shift β, of γ's shape (default: zeros; none for rms)");
}

void add_mode_options(CLI::App& cmd, CommonOptions& opts, const std::string& training_use) {
    cmd.add_option("--mode", opts.mode, "train: normalize with the batch statistics; eval: inference mode, with "
                                        "--running-mean and --running-var (batch norm only)")
        ->check(CLI::IsMember({"train", "eval"}))
        ->capture_default_str();
    const std::string use = training_use.empty() ? "" : "; in train mode, " + training_use;
    cmd.add_option("--running-mean", opts.running_mean,
                   "Running mean, C values in x's dtype (with --mode eval" + use + ")");
    cmd.add_option("--running-var", opts.running_var,
                   "Running variance, C values >= 0 in x's dtype (with --mode eval" + use + ")");
}

void check_mode_options(const CommonOptions& opts, bool training_use) {
    const bool any = !opts.running_mean.empty() || !opts.running_var.empty();
    if (opts.eval() && (opts.running_mean.empty() || opts.running_var.empty()))
        throw UsageError("--mode eval needs both --running-mean and --running-var (inference normalizes with the "
                         "running statistics)");
    if (!opts.eval() && any && !training_use)
        throw UsageError("--running-mean/--running-var are used only with --mode eval (train mode uses the "
                         "batch statistics)");
}

void check_running_options(const CommonOptions& opts, RunningOptionsGiven given) {
    if (opts.eval()) {
        if (given.batch_stats)
            throw UsageError("--mean/--invstd are the batch statistics, which --mode eval does not compute (it "
                             "normalizes with --running-mean and --running-var)");
        if (given.update)
            throw UsageError("--new-running-mean/--new-running-var are written by --mode train only (inference "
                             "does not update the running statistics)");
    } else {
        const bool both = !opts.running_mean.empty() && !opts.running_var.empty();
        if (given.update && !both)
            throw UsageError("--new-running-mean/--new-running-var need both --running-mean and --running-var (the "
                             "statistics to update)");
        if (!given.update && (!opts.running_mean.empty() || !opts.running_var.empty()))
            throw UsageError("--running-mean/--running-var in train mode only feed --new-running-mean/"
                             "--new-running-var; to normalize with them, use --mode eval");
    }
    if (!given.update && given.update_params)
        throw UsageError("--momentum/--running-var-correction apply to the update of the running statistics: give "
                         "--new-running-mean or --new-running-var");
}

RunningUpdate parse_running_update(const std::string& momentum, const std::string& correction) {
    RunningUpdate u;
    if (!momentum.empty()) {
        const double m = parse_number("--momentum", momentum);
        if (!(m >= 0 && m <= 1)) throw UsageError(fmt::format("--momentum {} must be in [0, 1]", momentum));
        u.momentum = m;
    }
    if (!correction.empty()) {
        u.correction = parse_int("--running-var-correction", correction);
        if (u.correction != 0 && u.correction != 1)
            throw UsageError(fmt::format("--running-var-correction {} must be 1 (unbiased batch variance, PyTorch) "
                                         "or 0 (biased, ONNX)",
                                         correction));
    }
    return u;
}

void refuse_empty_values(CLI::App& cmd) {
    for (CLI::Option* opt : cmd.get_options())
        if (opt->get_type_size() != 0 && opt->get_name() != "--help") opt->check(NonEmpty);
}

} // namespace bnorm::app
