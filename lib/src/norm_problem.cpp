// Which elements of x share statistics and which share γ and β, for each norm
// (bnorm/family.hpp), and the refusals of the problems that are not defined.
#include "bnorm/error.hpp"
#include "bnorm/family.hpp"

#include <fmt/format.h>

#include <array>

namespace bnorm {

namespace {
constexpr std::array<std::string_view, 5> kNames = {"batch", "layer", "rms", "instance", "group"};
} // namespace

std::string_view norm_name(Norm n) { return kNames[static_cast<std::size_t>(n)]; }

Norm parse_norm(std::string_view text, std::string_view option) {
    for (std::size_t i = 0; i < kNames.size(); ++i)
        if (text == kNames[i]) return static_cast<Norm>(i);
    throw UsageError(fmt::format("{} '{}' is not a norm (valid: batch, layer, rms, instance, group)", option, text));
}

int default_axis(Norm n, std::size_t rank) {
    return (n == Norm::layer || n == Norm::rms) ? static_cast<int>(rank) - 1 : 1;
}

NormProblem check_norm_problem(std::span<const std::int64_t> shape, Norm norm, int axis, std::int64_t groups,
                               const std::string& what, std::int64_t min_per_set) {
    const std::string name(norm_name(norm));
    const bool rows = norm == Norm::layer || norm == Norm::rms;
    if (norm == Norm::group && groups < 1)
        throw UsageError(groups == 0 ? "--norm group needs --groups G (the number of groups, dividing C)"
                                     : fmt::format("--groups {} must be at least 1", groups));
    if (norm != Norm::group && groups != 0)
        throw UsageError(fmt::format("--groups applies to --norm group only, not to --norm {}", name));
    const std::size_t min_rank = rows ? 1 : 2;
    if (shape.size() < min_rank)
        throw InputError::in_file(what, fmt::format("{} norm needs rank {} or more, found shape {}", name, min_rank,
                                                    shape_to_string(shape)));
    NormProblem p;
    p.norm = norm;
    p.shape.assign(shape.begin(), shape.end());
    p.axis = normalize_axis(axis, shape.size());
    p.groups = groups;
    if ((norm == Norm::instance || norm == Norm::group) && p.axis == 0)
        throw UsageError(fmt::format("--axis {} is the sample axis 0: --norm {} needs the channel axis, 1 or later "
                                     "(default 1)",
                                     axis, name));
    if (element_count(shape) == 0) throw InputError::in_file(what, fmt::format("shape {} has no elements", shape_to_string(shape)));

    const auto product = [&](std::size_t b, std::size_t e) {
        std::int64_t n = 1;
        for (std::size_t i = b; i < e; ++i) n *= shape[i];
        return n;
    };
    const std::size_t a = static_cast<std::size_t>(p.axis);
    if (rows) {
        p.sets = product(0, a);
        p.per_set = product(a, shape.size());
        p.params = p.per_set;
        p.inner = p.size();
        p.param_shape.assign(shape.begin() + p.axis, shape.end());
        p.stat_shape.assign(shape.begin(), shape.begin() + p.axis);
        p.stat_shape.resize(shape.size(), 1);
    } else {
        p.channels = shape[a];
        p.inner = product(a + 1, shape.size());
        p.params = p.channels;
        p.param_shape = {p.channels};
        if (norm == Norm::batch) {
            p.middle = product(0, a); // (batch: one sample of outer·C·inner)
            p.sets = p.channels;
            p.per_set = p.middle * p.inner;
            p.stat_shape = {p.channels};
        } else {
            p.samples = shape[0];
            p.middle = product(1, a);
            if (norm == Norm::group && p.channels % groups != 0)
                throw UsageError(fmt::format("--groups {} does not divide C = {}, the size of channel axis {} of x "
                                             "{}",
                                             groups, p.channels, p.axis, shape_to_string(shape)));
            const std::int64_t per_group = norm == Norm::group ? p.channels / groups : 1;
            const std::int64_t set_count = norm == Norm::group ? groups : p.channels;
            p.sets = p.samples * set_count;
            p.per_set = p.middle * per_group * p.inner;
            p.stat_shape = {p.samples, set_count};
        }
    }
    if (p.per_set < min_per_set) {
        // Say which norm and which axis made the sets this small, and over what.
        const std::string x_shape = shape_to_string(shape);
        const std::string given = axis == p.axis ? fmt::format("--axis {}", axis)
                                                 : fmt::format("--axis {} (axis {})", axis, p.axis);
        std::string over;
        if (rows)
            over = fmt::format("with {} normalizes over x.shape[{}:] = {} of x {}", given, p.axis,
                               shape_to_string(p.param_shape), x_shape);
        else if (norm == Norm::instance)
            over = fmt::format("with channel {} of x {} has one set per sample and channel, over the axes other "
                               "than 0 and {}",
                               given, x_shape, p.axis);
        else if (norm == Norm::group)
            over = fmt::format("with channel {} and --groups {} of x {} has one set per sample and group, of C/G "
                               "= {} channel{} times the other axes",
                               given, groups, x_shape, p.channels / groups, p.channels / groups == 1 ? "" : "s");
        else
            over = fmt::format("with channel {} of x {} has one set per channel", given, x_shape);
        throw InputError::in_file(what, fmt::format("--norm {} {}: sets of m = {} element{}; {} norm needs at least "
                                                    "{} per set",
                                                    name, over, p.per_set, p.per_set == 1 ? "" : "s", name,
                                                    min_per_set));
    }
    return p;
}

} // namespace bnorm
