// The STREAM-like triad, the bandwidth yardstick every kernel is compared with, and the
// copy-like stream (STREAM's scale), the yardstick of the one-pass inference forward.
#include "bench.hpp"

namespace bench {

Triad::Triad(std::size_t bytes_per_array)
    : a_(bytes_per_array / sizeof(double), 0.0),
      b_(a_.size(), 1.0),
      c_(a_.size(), 2.0) {}

Timing Triad::measure(int threads, const RepPolicy& policy) {
    const double s = 3.0;
    double* a = a_.data();
    const double* b = b_.data();
    const double* c = c_.data();
    const std::size_t n = a_.size();
    return bench::measure(
        [&] {
            fork_join(threads, [&](int k, int parts) {
                const Range r = part(n, k, parts);
                for (std::size_t i = r.begin; i < r.end; ++i) a[i] = b[i] + s * c[i];
            });
        },
        policy);
}

Timing Triad::measure_copy(int threads, const RepPolicy& policy) {
    const double s = 3.0;
    double* a = a_.data();
    const double* b = b_.data();
    const std::size_t n = a_.size();
    return bench::measure(
        [&] {
            fork_join(threads, [&](int k, int parts) {
                const Range r = part(n, k, parts);
                for (std::size_t i = r.begin; i < r.end; ++i) a[i] = s * b[i];
            });
        },
        policy);
}

} // namespace bench
