// Writing the output files: streamed rows through a helper thread, and all the outputs
// renamed into place together once every write succeeded.
#pragma once

#include "scratch.hpp"

#include "bnorm/array.hpp"
#include "bnorm/files.hpp"
#include "bnorm/layout.hpp"
#include "bnorm/npy.hpp"

#include <algorithm>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace bnorm::app {

/// Writes every (path, array) to a temporary file, then renames them all, and the already
/// written files `done`, into place; empty paths are skipped. Nothing is renamed unless
/// every write succeeded.
void write_outputs(std::vector<PendingFile> done, const std::vector<std::pair<std::string, const Array*>>& outputs);

/// Writes an output of x's shape whose rows produce(o0, o1, out) computes: an NPY file
/// through two 4 MiB buffers reused chunk after chunk (no full-size output in memory, none
/// of its page faults), its disk space reserved first; a CSV file from the whole array
/// (the text needs every value anyway), formatted on `threads` threads.
template <class T, class Produce>
PendingFile write_rows(const std::string& path, const Shape& shape, const Layout& l, int threads, Produce&& produce) {
    const std::int64_t row = l.channels * l.inner;
    if (format_of(path) == Format::csv) {
        Array whole(dtype_of<T>(), shape);
        produce(std::int64_t{0}, l.outer, whole.data<T>());
        return write_array(path, whole, threads);
    }
    PendingFile out(path);
    const std::string header = npy_header(dtype_of<T>(), shape);
    out.reserve(header.size() + std::size_t(l.size()) * sizeof(T));
    out.write(header.data(), header.size());
    constexpr std::int64_t kChunkBytes = 4 << 20;
    const std::int64_t rows = std::max<std::int64_t>(1, kChunkBytes / std::int64_t(sizeof(T)) / std::max<std::int64_t>(1, row));
    // Two buffers: a chunk is computed into one while a helper thread writes the other,
    // the chunk before (write() copies into the page cache about as slowly as the kernels
    // compute: overlapping them hides the computation). `writing` is declared last, so an
    // exception waits for the write in flight before the buffers and the file go.
    const std::size_t capacity = std::size_t(std::min(rows, l.outer) * row);
    const std::unique_ptr<void, void (*)(void*)> memory = scratch_memory(2 * capacity * sizeof(T));
    T* const buffers[2] = {static_cast<T*>(memory.get()), static_cast<T*>(memory.get()) + capacity};
    std::future<void> writing;
    for (std::int64_t o0 = 0, k = 0; o0 < l.outer; o0 += rows, ++k) {
        const std::int64_t o1 = std::min(l.outer, o0 + rows);
        T* const buffer = buffers[k % 2];
        produce(o0, o1, buffer);
        if (writing.valid()) writing.get(); // rethrows a failed write
        const std::size_t bytes = std::size_t((o1 - o0) * row) * sizeof(T);
        try {
            writing = std::async(std::launch::async, [&out, buffer, bytes] { out.write(buffer, bytes); });
        } catch (const std::system_error&) { // no thread to be had (a memory or process limit): write it here
            out.write(buffer, bytes);
        }
    }
    if (writing.valid()) writing.get();
    return out;
}

} // namespace bnorm::app
