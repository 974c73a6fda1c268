// Scratch memory on transparent huge pages.
#include "scratch.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>

#include <sys/mman.h>

namespace bnorm::app {

std::unique_ptr<void, void (*)(void*)> scratch_memory(std::size_t bytes) {
    constexpr std::size_t kHugePage = 2 << 20;
    const std::size_t size = (std::max<std::size_t>(bytes, 1) + kHugePage - 1) / kHugePage * kHugePage;
    void* p = std::aligned_alloc(kHugePage, size);
    if (!p) throw std::bad_alloc();
    ::madvise(p, size, MADV_HUGEPAGE); // advice only: without it, 4 KiB pages
    return {p, std::free};
}

} // namespace bnorm::app
