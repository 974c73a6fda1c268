#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "../lib/src/channel_groups.hpp"

int main(int argc, char** argv) {
    // Pass B streams its outputs from a size that depends on the machine's cache (16 to
    // 64 MiB); the tests stream from 16 MiB wherever they run, so that the streamed paths
    // are tested on every machine (test_passes.cpp checks the choice itself).
    bnorm::detail::set_stream_threshold(std::int64_t(16) << 20);
    doctest::Context context(argc, argv);
    return context.run();
}
