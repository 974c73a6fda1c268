// What the subcommands share: the options every one of them takes (--x, --eps, --axis,
// --shape, --dtype, --allow-nonfinite) and loading plus validating the input files.
#pragma once

#include "bnorm/array.hpp"
#include "bnorm/error.hpp"
#include "bnorm/files.hpp"
#include "bnorm/npy.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bnorm::app {

struct CommonOptions {
    std::string x;
    std::string eps = "1e-5";
    std::string axis = "1"; // parsed strictly (no hex, no spaces) by load_problem
    std::string shape;  // "8,3,5,7", for CSV x and dy
    std::string dtype;  // "float32" | "float64", for CSV inputs; NPY files carry theirs
    bool allow_nonfinite = false;
    std::string threads = "0"; // 0: all cores; results do not depend on it (see thread_count)
};

/// Refuses an empty value ("--dy ''"): an empty path or number is a mistake, never "not given".
extern const CLI::Validator NonEmpty;

/// Registers --x, --eps, --axis, --shape, --dtype and --allow-nonfinite on `cmd`.
void add_common_options(CLI::App& cmd, CommonOptions& opts);

/// Adds NonEmpty to every option of `cmd` that takes a value (call after adding them all).
void refuse_empty_values(CLI::App& cmd);

/// The validated inputs of one batch-norm problem.
struct Problem {
    int axis = 1;       ///< --axis as given (may be negative)
    Array x;
    Layout layout;
    double eps = 0;
    std::optional<Array> gamma, beta, dy;
    std::string x_path, gamma_path, beta_path, dy_path; ///< for messages
    bool allow_nonfinite = false;                       ///< --allow-nonfinite
    int threads = 0;                                    ///< --threads (0: all cores), to read CSV inputs
};

/// Input and output paths by option name, for check_paths and messages.
using NamedPaths = std::vector<std::pair<std::string, std::string>>;

/// Checks the paths (check_paths), parses --eps/--shape/--dtype strictly, loads x and
/// the optional γ, β, dy (empty path = not given), and checks every cross-file rule:
/// rank, axis, m >= 2, γ/β length C, dy shape and dtype equal to x's (finite values:
/// require_finite). Throws bnorm::Error subclasses with one-line messages.
/// `outputs` are array outputs (.npy/.csv); `extra_inputs` further array inputs loaded by
/// the caller; `other_outputs` outputs of another type (a JSON report). All are checked
/// by check_paths before anything is read.
Problem load_problem(const CommonOptions& opts, const std::string& gamma, const std::string& beta,
                     const std::string& dy, const NamedPaths& outputs, const NamedPaths& extra_inputs = {},
                     const NamedPaths& other_outputs = {});

/// Loads a tensor that must have x's shape and dtype (dy, a given dx). CSV is read in x's
/// dtype and shape.
Array load_like_x(const std::string& path, const Problem& p, const std::string& x_path);

/// Loads C values (γ, β, a given dγ or dβ): a 1-d array, or one row or one column.
Array load_per_channel(const std::string& path, const Problem& p, const std::string& x_path);

/// Refuses NaN and ±inf, naming the file and the first index.
void check_finite(const Array& a, const std::string& path);

/// Refuses NaN and ±inf in x, γ, β and dy (in that order) unless --allow-nonfinite,
/// naming the file and the first index. `proven`: a pass over x and dy has shown there
/// are none in them (ForwardPass::inputs_proven_finite), which spares reading them again.
void require_finite(const Problem& p, bool proven = false);

/// --threads as a number: a decimal integer from 0 (all cores) to 4096.
int thread_count(const CommonOptions& opts);

/// Parses a decimal integer option value strictly ("1x", "0x1", " 1" fail).
int parse_int(const std::string& option, const std::string& text);

/// Parses a strictly numeric option value: a finite number >= 0 ("--rtol", "1e-9x" fails).
double parse_nonnegative(const std::string& option, const std::string& text);

/// Writes every (path, array) to a temporary file, then renames them all, and the already
/// written files `done`, into place; empty paths are skipped. Nothing is renamed unless
/// every write succeeded.
void write_outputs(std::vector<PendingFile> done, const std::vector<std::pair<std::string, const Array*>>& outputs);

/// `bytes` of uninitialized memory, on transparent huge pages where the system allows
/// them (its first touch then faults 2 MiB at a time instead of 4 KiB: fresh memory
/// costs more in page faults than the kernels take to fill it). Throws std::bad_alloc.
std::unique_ptr<void, void (*)(void*)> scratch_memory(std::size_t bytes);

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
        writing = std::async(std::launch::async, [&out, buffer, bytes] { out.write(buffer, bytes); });
    }
    if (writing.valid()) writing.get();
    return out;
}

/// Re-throws an error raised by the library for the data of file `path` with the file
/// name in front, so that every message names its file.
[[noreturn]] void rethrow_for_file(const std::string& path);

/// Runs step(), a call into the library on p's data, giving an InputError it throws the
/// name of x's file; a NaN or an infinity in the inputs is reported first, as the cause.
template <class Step> decltype(auto) about_x(const Problem& p, Step&& step) {
    try {
        return step();
    } catch (const InputError&) {
        require_finite(p);
        rethrow_for_file(p.x_path);
    }
}

} // namespace bnorm::app
