// Channel groups: forward() and backward() take a large tensor with runs a group of
// channels at a time, both passes of a group while its inputs are in cache.
#include "channel_groups.hpp"

#include "blocks.hpp"
#include "bnorm/batchnorm.hpp"
#include "lanes.hpp"
#include "parallel.hpp"
#include "pass_state.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace bnorm {

using kernels::Blocks;
using kernels::shifted;

// ---- one call: the passes over groups of channels -----------------------------------------
//
// The two passes over a tensor larger than the caches read its inputs from memory twice.
// Where the tensor has runs (inner > 1, as NCHW), forward() and backward() run it a group
// of channels at a time instead, the groups on the threads: pass A of a group, then its
// pass B, which finds the group's inputs still in L2. Each channel gets the same blocks,
// and so the same bits, as in the passes over the whole tensor (ForwardState's and
// BackwardState's constructors for a group), which the two-step callers (the command line) use.
//
// forward() groups only inputs larger than the last-level cache: called again and again
// on the same tensor, as in a benchmark, inputs that fit there stay there between calls
// when each call reads them twice, and not when it reads them once. backward() groups
// from piece_threshold(), within the cache too: its pass B reads two inputs, and finds
// them in L2.

namespace {

/// A cache's size as sysconf gives it (`fallback` when it does not, or gives a size
/// outside [lo, hi], which no core's cache has), and a test's override (0: the system's).
class CacheSize {
public:
    CacheSize(long system, std::int64_t lo, std::int64_t hi, std::int64_t fallback)
        : system_(system >= lo && system <= hi ? std::int64_t(system) : fallback) {}
    std::int64_t bytes() const {
        const std::int64_t set = set_.load(std::memory_order_relaxed);
        return set > 0 ? set : system_;
    }
    void set(std::int64_t bytes) { set_.store(bytes, std::memory_order_relaxed); }

private:
    std::int64_t system_;
    std::atomic<std::int64_t> set_{0};
};

long sysconf_or_none(int name) { return name < 0 ? -1 : ::sysconf(name); }

#ifdef _SC_LEVEL3_CACHE_SIZE
constexpr int kLevel3 = _SC_LEVEL3_CACHE_SIZE;
#else
constexpr int kLevel3 = -1;
#endif
#ifdef _SC_LEVEL2_CACHE_SIZE
constexpr int kLevel2 = _SC_LEVEL2_CACHE_SIZE;
#else
constexpr int kLevel2 = -1;
#endif

/// The last-level cache (32 MiB when the system does not say) and a core's L2 (1 MiB).
CacheSize& last_level() {
    static CacheSize size(sysconf_or_none(kLevel3), 1, std::int64_t(1) << 62, std::int64_t(32) << 20);
    return size;
}
CacheSize& level2() {
    static CacheSize size(sysconf_or_none(kLevel2), 64 << 10, 64 << 20, std::int64_t(1) << 20);
    return size;
}

} // namespace

std::int64_t detail::group_threshold() { return last_level().bytes(); }

std::int64_t detail::piece_threshold() { return std::min<std::int64_t>(8 << 20, group_threshold()); }

void detail::set_group_threshold(std::int64_t bytes) { last_level().set(bytes); }

namespace {
std::atomic<std::int64_t> stream_set{0};
}

std::int64_t detail::stream_threshold() {
    const std::int64_t set = stream_set.load(std::memory_order_relaxed);
    return set > 0 ? set
                   : std::clamp<std::int64_t>(group_threshold() / 4, std::int64_t(16) << 20, std::int64_t(256) << 20);
}

void detail::set_stream_threshold(std::int64_t bytes) { stream_set.store(bytes, std::memory_order_relaxed); }

std::int64_t detail::l2_bytes() { return level2().bytes(); }

std::int64_t detail::piece_bytes() { return l2_bytes() / 4; }

void detail::set_l2_bytes(std::int64_t bytes) { level2().set(bytes); }

namespace {

/// The bytes of input (x, and dy for backward) of a group: channels are grouped up to
/// kGroupBytes, and a channel of more than kGroupBytes is a group alone up to
/// kLargestGroupBytes; larger ones take the passes over the whole tensor. A core's L2
/// holds about 1 MiB.
constexpr std::int64_t kGroupBytes = 1 << 20;

/// The input bytes of the blocks of rows that backward's pass B takes from a group's end
/// back to its start: large enough that the calls cost nothing against their work.
constexpr std::int64_t kBackBlockBytes = 64 << 10;

} // namespace

std::int64_t detail::channels_per_group(const Layout& l, double eps, int inputs, std::size_t element_bytes) {
    const std::int64_t element = inputs * std::int64_t(element_bytes); // bytes of input per value
    const std::int64_t from = inputs == 2 ? piece_threshold() : group_threshold();
    if (l.inner == 1 || eps == 0 || l.size() * element < from) return 0;
    const std::int64_t bytes = l.per_channel() * element; // of one channel
    if (bytes > kLargestGroupBytes || !Blocks(l, std::size_t(element)).whole_rows) return 0;
    return std::max<std::int64_t>(1, kGroupBytes / bytes);
}

namespace {

/// Calls run(c0, layout) for the groups of `per_group` channels of l, on the threads;
/// layout is l with the group's channels.
template <class F> void for_channel_groups(const Layout& l, std::int64_t per_group, int threads, F&& run) {
    const std::int64_t groups = (l.channels + per_group - 1) / per_group;
    detail::parallel_chunks(groups, 1, detail::resolve_threads(threads), [&](std::int64_t g0, std::int64_t g1) {
        for (std::int64_t g = g0; g < g1; ++g) {
            const std::int64_t c0 = g * per_group;
            run(c0, Layout{l.outer, std::min(per_group, l.channels - c0), l.inner});
        }
    });
}

/// The running statistics' update that a training forward also makes, if any.
template <class T> struct Update {
    RunningStats<T> running;
    RunningUpdate u;
    T *new_mean, *new_var;
};

/// forward(), and the update of the running statistics from each group's moments while
/// the group is in hand, so that the update costs no read of x.
template <class T>
void forward_updating(const T* x, const T* gamma, const T* beta, const Layout& l, double eps, T* y, T* mean,
                      T* invstd, const Update<T>* up, int threads) {
    const auto run = [&](const detail::ForwardState<T>& pass, std::int64_t c0, T* y0) {
        pass.statistics(shifted(mean, c0), shifted(invstd, c0));
        if (up)
            pass.update_running({shifted(up->running.mean, c0), shifted(up->running.var, c0)}, up->u,
                                shifted(up->new_mean, c0), shifted(up->new_var, c0));
        pass.apply(0, l.outer, y0);
    };
    if (const std::int64_t per_group = detail::channels_per_group(l, eps, 1, sizeof(T))) {
        for_channel_groups(l, per_group, threads, [&](std::int64_t c0, const Layout& group) {
            run(detail::ForwardState<T>(x, gamma, beta, group, l.channels, c0, eps, 1), c0, y + c0 * l.inner);
        });
        return;
    }
    run(detail::ForwardState<T>(x, gamma, beta, l, l.channels, 0, eps, threads), 0, y);
}

} // namespace

template <class T>
void forward(const T* x, const T* gamma, const T* beta, const Layout& l, double eps, T* y, T* mean, T* invstd,
             int threads) {
    forward_updating<T>(x, gamma, beta, l, eps, y, mean, invstd, nullptr, threads);
}

template <class T>
void forward(const T* x, const T* gamma, const T* beta, RunningStats<T> running, RunningUpdate u, const Layout& l,
             double eps, T* y, T* mean, T* invstd, T* new_mean, T* new_var, int threads) {
    detail::check_running_update(running, u, l, eps); // before any group writes its outputs
    const Update<T> up{running, u, new_mean, new_var};
    forward_updating<T>(x, gamma, beta, l, eps, y, mean, invstd, &up, threads);
}

template <class T>
void backward(const T* x, const T* gamma, const T* dy, const Layout& l, double eps, T* dx, T* dgamma, T* dbeta,
              int threads) {
    if (const std::int64_t per_group = detail::channels_per_group(l, eps, 2, sizeof(T))) {
        for_channel_groups(l, per_group, threads, [&](std::int64_t c0, const Layout& group) {
            const detail::BackwardState<T> pass(x, gamma, dy, group, l.channels, c0, eps, 1);
            pass.gradients(shifted(dgamma, c0), shifted(dbeta, c0));
            // pass B from the last rows back, blocks of about kBackBlockBytes of input: pass A
            // read those last, so they are the ones still in L2 where the group does not fit
            // there whole (a float64 channel of 1.6 MiB in Zen's 1 MiB); pass B is value by
            // value, so the order changes no bit
            const std::int64_t row_bytes = group.channels * l.inner * 2 * std::int64_t(sizeof(T));
            const std::int64_t block = std::max<std::int64_t>(1, kBackBlockBytes / row_bytes);
            for (std::int64_t o1 = l.outer; o1 > 0; o1 -= block) {
                const std::int64_t o0 = std::max<std::int64_t>(0, o1 - block);
                pass.apply(o0, o1, dx + (o0 * l.channels + c0) * l.inner);
            }
        });
        return;
    }
    const detail::BackwardState<T> pass(x, gamma, dy, l, l.channels, 0, eps, threads);
    pass.gradients(dgamma, dbeta);
    pass.apply(0, l.outer, dx);
}

template void forward<float>(const float*, const float*, const float*, const Layout&, double, float*, float*, float*,
                             int);
template void forward<double>(const double*, const double*, const double*, const Layout&, double, double*, double*,
                              double*, int);
template void forward<float>(const float*, const float*, const float*, RunningStats<float>, RunningUpdate,
                             const Layout&, double, float*, float*, float*, float*, float*, int);
template void forward<double>(const double*, const double*, const double*, RunningStats<double>, RunningUpdate,
                              const Layout&, double, double*, double*, double*, double*, double*, int);
template void backward<float>(const float*, const float*, const float*, const Layout&, double, float*, float*, float*,
                              int);
template void backward<double>(const double*, const double*, const double*, const Layout&, double, double*, double*,
                               double*, int);

} // namespace bnorm

