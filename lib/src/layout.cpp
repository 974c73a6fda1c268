#include "bnorm/layout.hpp"

#include "bnorm/error.hpp"

#include <fmt/format.h>

namespace bnorm {

int normalize_axis(int axis, std::size_t rank) {
    const auto r = static_cast<long long>(rank);
    if (axis < -r || axis >= r)
        throw UsageError(fmt::format("--axis {} is out of range for a tensor of rank {} "
                                     "(valid: {} to {})",
                                     axis, r, -r, r - 1));
    return axis < 0 ? static_cast<int>(axis + r) : axis;
}

Layout collapse(std::span<const std::int64_t> shape, int axis) {
    if (shape.size() < 2)
        throw UsageError(fmt::format("batch norm needs a tensor of rank 2 or more, found shape {}",
                                     shape_to_string(shape)));
    const int a = normalize_axis(axis, shape.size());
    Layout l{1, shape[a], 1};
    for (int i = 0; i < a; ++i) l.outer *= shape[i];
    for (std::size_t i = a + 1; i < shape.size(); ++i) l.inner *= shape[i];
    return l;
}

Layout check_problem(std::span<const std::int64_t> shape, int axis, const std::string& what,
                     std::int64_t min_per_channel) {
    if (shape.size() < 2)
        throw InputError::in_file(what, fmt::format("batch norm needs rank 2 or more, found shape {}",
                                                    shape_to_string(shape)));
    const Layout l = collapse(shape, axis);
    if (l.channels == 0 || l.per_channel() == 0)
        throw InputError::in_file(what, fmt::format("shape {} has no elements", shape_to_string(shape)));
    if (l.per_channel() < min_per_channel)
        throw InputError::in_file(
            what, fmt::format("shape {} with channel axis {} has m = {} value per channel; "
                              "batch norm needs at least 2 (a batch of one is undefined)",
                              shape_to_string(shape), normalize_axis(axis, shape.size()),
                              l.per_channel()));
    return l;
}

std::string shape_to_string(std::span<const std::int64_t> shape) {
    if (shape.size() == 1) return fmt::format("({},)", shape[0]);
    return fmt::format("({})", fmt::join(shape, ", "));
}

std::int64_t element_count(std::span<const std::int64_t> shape) {
    std::int64_t n = 1;
    for (std::int64_t d : shape) {
        if (d < 0 || __builtin_mul_overflow(n, d, &n)) return -1;
    }
    return n;
}

} // namespace bnorm
