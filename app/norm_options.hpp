// --norm and --groups (forward, backward, gradcheck): their strict parsing and the rules
// across options that depend on the norm, checked before any file is read.
#pragma once

#include "options.hpp"

#include "bnorm/family.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bnorm::app {

/// The norm asked for, and G for --norm group (0 for the others).
struct NormChoice {
    Norm norm = Norm::batch;
    std::int64_t groups = 0;
};

/// Options given on the command line, as (name, value); an empty value means not given.
using GivenOptions = std::vector<std::pair<std::string, std::string>>;

/// Parses --norm (batch|layer|rms|instance|group) and --groups (a decimal integer >= 1)
/// strictly. Throws UsageError naming the option and the value; --groups is required by
/// --norm group and refused with any other norm.
NormChoice parse_norm_choice(const CommonOptions& opts);

/// The --axis a norm takes when none is given, as the user would write it: -1 for layer
/// and rms (ONNX's default), the channel axis 1 for the others.
inline int default_axis_option(Norm norm) { return norm == Norm::layer || norm == Norm::rms ? -1 : 1; }

/// parse_norm_choice, then the rules across options: inference mode and the running
/// statistics (--mode eval, and the options in `batch_only`) apply to batch norm only;
/// rms norm has no β and no mean, so the options in `not_for_rms` (--beta, --mean,
/// --dbeta) are refused with it. Each refusal is a UsageError naming the option.
NormChoice check_norm_options(const CommonOptions& opts, const GivenOptions& batch_only,
                              const GivenOptions& not_for_rms);

} // namespace bnorm::app
