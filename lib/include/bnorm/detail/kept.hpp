// An allocator for the passes' per-call storage (sums, moments, coefficients), which
// keeps a few blocks each thread frees and hands them out again. Internal to the library
// (the passes' state, lib/src/pass_state.hpp, holds their coefficients in it).
//
// A pass on a small tensor allocates a few blocks of one to three KB and frees them
// before it returns. glibc's per-thread cache takes only blocks up to 1032 bytes; the
// others go through its arenas, which costs the tiny tensors. Each thread keeps at most
// kKeptBlocks blocks of at most kKeptBytes, freed when it exits.
#pragma once

#include <array>
#include <cstddef>
#include <new>

namespace bnorm::detail {

constexpr std::size_t kKeptBytes = 64 * 1024, kKeptBlocks = 4;

/// This thread's kept blocks (null when empty), and the bytes each can hold.
struct KeptBlocks {
    struct Block {
        void* p = nullptr;
        std::size_t bytes = 0;
    };
    std::array<Block, kKeptBlocks> blocks;
    ~KeptBlocks() {
        release();
        ended() = true;
    }
    /// Frees the blocks.
    void release() {
        for (Block& b : blocks) ::operator delete(b.p), b = {};
    }
    /// This thread's blocks, or null once they are freed at its end (a pass destroyed
    /// after that, by a static destructor say, frees its storage itself).
    static KeptBlocks* of_this_thread() {
        if (ended()) return nullptr;
        thread_local KeptBlocks kept;
        return &kept;
    }

private:
    static bool& ended() {
        thread_local bool flag = false; // (no destructor: valid to the thread's very end)
        return flag;
    }
};

/// std::allocator's contract, from this thread's kept blocks where one is large enough.
/// Blocks may be freed on another thread than the one that allocated them (any thread's
/// blocks come from operator new).
template <class T> struct Kept {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "kept blocks have operator new's alignment");
    using value_type = T;
    Kept() = default;
    template <class U> Kept(const Kept<U>&) noexcept {}

    T* allocate(std::size_t n) {
        const std::size_t bytes = n * sizeof(T);
        KeptBlocks::Block* best = nullptr; // the smallest that fits
        if (KeptBlocks* kept = KeptBlocks::of_this_thread())
            for (KeptBlocks::Block& b : kept->blocks)
                if (b.p && b.bytes >= bytes && (!best || b.bytes < best->bytes)) best = &b;
        if (!best) return static_cast<T*>(::operator new(bytes));
        void* p = best->p;
        best->p = nullptr;
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t n) noexcept {
        const std::size_t bytes = n * sizeof(T); // (at most what the block holds)
        KeptBlocks* kept = KeptBlocks::of_this_thread();
        if (kept && bytes <= kKeptBytes)
            for (KeptBlocks::Block& b : kept->blocks)
                if (!b.p) {
                    b = {p, bytes};
                    return;
                }
        ::operator delete(p);
    }
    template <class U> bool operator==(const Kept<U>&) const noexcept { return true; }
};

} // namespace bnorm::detail
