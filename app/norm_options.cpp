// --norm and --groups, and the options that apply to some norms only.
#include "norm_options.hpp"

#include "bnorm/error.hpp"

#include <fmt/format.h>

namespace bnorm::app {

NormChoice parse_norm_choice(const CommonOptions& opts) {
    NormChoice c;
    c.norm = parse_norm(opts.norm, "--norm");
    if (!opts.groups.empty()) {
        const int g = parse_int("--groups", opts.groups);
        if (g < 1)
            throw UsageError(fmt::format("--groups {} must be a positive integer (the number of groups, which "
                                         "divides C)",
                                         opts.groups));
        if (c.norm != Norm::group)
            throw UsageError(fmt::format("--groups applies to --norm group only, not to --norm {}",
                                         norm_name(c.norm)));
        c.groups = g;
    } else if (c.norm == Norm::group) {
        throw UsageError("--norm group needs --groups G (the number of groups, which divides C)");
    }
    return c;
}

NormChoice check_norm_options(const CommonOptions& opts, const GivenOptions& batch_only,
                              const GivenOptions& not_for_rms) {
    const NormChoice c = parse_norm_choice(opts);
    if (c.norm == Norm::batch) return c;
    const std::string name(norm_name(c.norm));
    // Instance norm's running statistics (PyTorch's track_running_stats) are not
    // supported: every non-batch norm normalizes with the statistics of x's own sets.
    if (opts.eval())
        throw UsageError(fmt::format("--mode eval applies to --norm batch only (--norm {} normalizes with the "
                                     "statistics of each set of x; running statistics are not supported)",
                                     name));
    GivenOptions running{{"--running-mean", opts.running_mean}, {"--running-var", opts.running_var}};
    running.insert(running.end(), batch_only.begin(), batch_only.end());
    for (const auto& [option, value] : running)
        if (!value.empty())
            throw UsageError(fmt::format("{} applies to --norm batch only (running statistics are not "
                                         "supported for --norm {})",
                                         option, name));
    if (c.norm == Norm::rms)
        for (const auto& [option, value] : not_for_rms)
            if (!value.empty())
                throw UsageError(fmt::format("--norm rms has no {}: {} does not apply (y = γ·x·invstd, "
                                             "invstd = 1/sqrt(mean(x²) + eps))",
                                             option == "--mean" ? "mean" : "β", option));
    return c;
}

} // namespace bnorm::app
