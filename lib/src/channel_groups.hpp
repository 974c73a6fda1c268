// When forward() and backward() take a tensor a group of channels at a time
// (channel_groups.cpp). Internal.
#pragma once

#include "bnorm/layout.hpp"

#include <cstddef>
#include <cstdint>

namespace bnorm::detail {

/// The size of the inputs (x, and dy for backward) from which forward() and backward()
/// take tensors with runs (inner > 1) a group of channels at a time: the last-level
/// cache's size (sysconf; 32 MiB when the system does not say).
std::int64_t group_threshold();

/// The size of the inputs from which backward() (and the family's sets, family_sets.hpp)
/// take tensors with runs in pieces that stay in L2 even where they fit in the last-level
/// cache: 8 MiB, several times any core's L2, or group_threshold() if less. Pass B then
/// reads x and dy from L2, not the L3 (docs/performance.md). forward() keeps
/// group_threshold(): its groups within Ice Lake's L3 were slower on two threads.
std::int64_t piece_threshold();

/// The input bytes (x, and dy for backward) of one piece of the family's sets
/// (family_sets.hpp, for_pieces): a quarter of a core's L2 (sysconf; 1 MiB when the
/// system does not say), so that pass B finds the piece there with the lines that pass A
/// prefetched past it. A piece of 1 MiB, the whole L2 of a Zen core, was read from the
/// L3 again (docs/performance.md).
std::int64_t piece_bytes();

/// The output bytes from which batch norm's pass B (and the family's sets) streams its
/// stores past the caches (non-temporal): a quarter of the last-level cache, within
/// [16, 256] MiB. Where the cache is large, an output that stays in it beside its input is
/// written faster in the ordinary way (the Zen 5 guest, 508 MiB reported: NCHW and
/// (65536, 256) float32 inference 0.71 to 0.91 of the streamed time, docs/performance.md);
/// machines with a 32 MiB cache keep 16 MiB. Layer and RMS norm (family_rows.cpp) and
/// float64 inference (forward_pass.cpp) keep 16 MiB everywhere.
std::int64_t stream_threshold();

/// Sets stream_threshold() (0: back to the machine's), for tests, which stream from
/// 16 MiB wherever they run; not thread-safe against calls in flight.
void set_stream_threshold(std::int64_t bytes);

/// The L2's size as piece_bytes() takes it.
std::int64_t l2_bytes();

/// Sets l2_bytes() (0: back to the cache's size), for tests, which compare the bits of
/// several cuts of the same tensor; not thread-safe against calls in flight.
void set_l2_bytes(std::int64_t bytes);

/// The largest channel (bytes of input) that channels_per_group puts in a group of its
/// own, and the largest set the family's pieces take (family_sets.hpp): past it, a set's
/// two passes would not find it in L2 anyway.
constexpr std::int64_t kLargestGroupBytes = 2 << 20;

/// The channels in a group for forward() (inputs = 1) or backward() (inputs = 2) of l,
/// of element_bytes a value, or 0 for the passes over the whole tensor: tensors without
/// runs, or whose inputs are under group_threshold() (forward) or piece_threshold()
/// (backward), or cut into blocks by runs, or whose channels are larger than
/// kLargestGroupBytes, or with eps = 0, for which a constant channel throws, and must
/// before any output is written.
std::int64_t channels_per_group(const Layout& l, double eps, int inputs, std::size_t element_bytes);

/// Sets group_threshold() (0: back to the cache's size). For tests, which run the groups
/// on tensors smaller than the cache; not thread-safe against calls in flight. Either way
/// the outputs are the same bits.
void set_group_threshold(std::int64_t bytes);

} // namespace bnorm::detail
