// Scratch memory for the outputs' buffers, on transparent huge pages.
#pragma once

#include <cstddef>
#include <memory>

namespace bnorm::app {

/// `bytes` of uninitialized memory, on transparent huge pages where the system allows
/// them (its first touch then faults 2 MiB at a time instead of 4 KiB: fresh memory
/// costs more in page faults than the kernels take to fill it). Throws std::bad_alloc.
std::unique_ptr<void, void (*)(void*)> scratch_memory(std::size_t bytes);

} // namespace bnorm::app
