// The parts of bnorm_bench: the cases (bench/cases.json), the memory-bandwidth yardstick
// streams (triad.cpp), bnorm's kernels (kernels.cpp), the oneDNN peer (onednn.cpp) and the CSV
// reader and writer (csv.cpp). main.cpp runs them and writes the JSON records that
// bench/report.py turns into the table.
#pragma once

#include "harness.hpp"

#include "bnorm/array.hpp"
#include "bnorm/family.hpp"
#include "bnorm/layout.hpp"

#include <optional>
#include <string>
#include <vector>

namespace bench {

/// forward and backward: training mode (bnorm::forward, bnorm::backward). eval_forward:
/// inference mode, y from the running statistics (bnorm::forward_eval). forward_running:
/// the training forward that also updates the running statistics (ForwardPass's
/// statistics, update_running and apply, as the command line runs them).
enum class Op { forward, forward_running, backward, eval_forward };
inline constexpr Op kOps[] = {Op::forward, Op::forward_running, Op::backward, Op::eval_forward};
inline const char* op_name(Op op) {
    switch (op) {
    case Op::forward: return "forward";
    case Op::forward_running: return "forward_running";
    case Op::backward: return "backward";
    case Op::eval_forward: return "eval_forward";
    }
    return "?";
}

/// One problem of bench/cases.json.
struct Case {
    bnorm::Shape shape; ///< the array as stored in memory (nhwc: N, H, W, C)
    int axis = 1;       ///< its channel axis
    std::string layout; ///< "nc", "nchw" or "nhwc"
    bnorm::DType dtype = bnorm::DType::f32;
    std::string data = "normal"; ///< "normal", "offset", "linear" or "ahead16" (bench/cases.json)
    std::vector<Op> ops;         ///< cases.json's "ops" and the case's "more_ops", in kOps order
    std::string norm = "batch";  ///< the family member (bnorm/family.hpp); batch unless the case says
    std::int64_t groups = 0;     ///< --groups of a group norm
};

/// The operands of one case, allocated and touched once: random normal inputs (shifted
/// or made linear as the case's `data` says), running statistics (mean near 0, variance
/// near 1), and every output of forward(), backward() and the running statistics' update.
/// The outputs y and dx are at y_out and dx_out: the start of their buffers, or (data
/// "ahead16") 16 bytes ahead of x modulo 4 KiB, within buffers made larger for it.
template <class T> struct Tensors {
    explicit Tensors(const Case& c);
    bnorm::NormProblem problem; ///< the case's norm over its shape (batch: its layout below)
    bnorm::Layout layout;
    Buffer<T> x, dy, gamma, beta;
    Buffer<T> y, mean, invstd;
    Buffer<T> dx, dgamma, dbeta;
    Buffer<T> running_mean, running_var, new_running_mean, new_running_var;
    T* y_out = nullptr;
    T* dx_out = nullptr;
};

inline constexpr double kEps = 1e-5;

/// bnorm::forward / bnorm::backward on t's buffers, on `threads` threads (the family's
/// functions for a norm other than batch: no β and no mean for rms).
template <class T> void run_forward(Tensors<T>& t, int threads);
template <class T> void run_backward(Tensors<T>& t, int threads);
/// The training forward with the update of the running statistics (PyTorch's momentum
/// 0.1, unbiased variance): ForwardPass, statistics(), update_running(), apply().
template <class T> void run_forward_running(Tensors<T>& t, int threads);
/// bnorm::forward_eval: y from the running statistics.
template <class T> void run_eval_forward(Tensors<T>& t, int threads);
/// The one of the four that `op` names.
template <class T> void run_op(Op op, Tensors<T>& t, int threads);

/// The yardstick streams, on arrays of doubles (a written, b and c read):
/// - triad: a[i] = b[i] + s·c[i], reads two arrays and writes one (pass B of backward);
/// - triad_nt: the same with non-temporal stores, as bnorm's pass B streams big outputs;
/// - copy: a[i] = s·b[i] (STREAM's scale), reads one and writes one (pass B of forward);
/// - copy_nt: the same with non-temporal stores;
/// - read2: Σ b[i] + c[i], reads two arrays and writes nothing (pass A of backward).
enum class Stream { triad, triad_nt, copy, copy_nt, read2 };
inline constexpr Stream kStreams[] = {Stream::triad, Stream::triad_nt, Stream::copy, Stream::copy_nt,
                                      Stream::read2};
/// The stream's op name in the JSON records: "triad", "triad_nt", "copy", "copy_nt", "read2".
const char* stream_name(Stream s);
/// How many arrays the stream reads or writes per element (3 or 2).
int stream_arrays(Stream s);

/// Three arrays of `bytes_per_array` bytes of doubles, allocated and touched on
/// construction, and the streams over them: the memory bandwidth a streaming kernel can
/// reach on this machine. A stream counts 8 bytes per array per element it moves
/// (stream_arrays), not the lines an ordinary store reads before writing them.
class Triad {
public:
    explicit Triad(std::size_t bytes_per_array);
    /// Times one call of `stream` over the whole arrays on `threads` threads.
    Timing measure(Stream stream, int threads, const RepPolicy& policy);
    std::size_t bytes_per_call(Stream stream) const { return static_cast<std::size_t>(stream_arrays(stream)) * a_.bytes(); }
    std::size_t bytes_per_array() const { return a_.bytes(); }

private:
    /// Σ b[i] + c[i] over r, with vector accumulators.
    static double sum2(const double* b, const double* c, Range r);
    Buffer<double> a_, b_, c_;
    double sink_ = 0; ///< read2's sums, kept so that the compiler keeps the reads
};

namespace onednn {
/// The oneDNN version bnorm_bench was built with, or nullopt when it was built without.
std::optional<std::string> version();

struct Result {
    std::optional<Timing> timing; ///< nullopt when skipped
    std::string implementation;   ///< oneDNN's name for the kernel it chose
    std::string skipped;          ///< why there is no timing
};
/// Times oneDNN's batch normalization (training forward, backward from the saved
/// statistics, or inference forward from the running statistics: use_global_stats) on
/// t's buffers with `threads` OpenMP threads. forward_running is skipped (oneDNN keeps
/// no running statistics).
Result measure(Op op, const Case& c, Tensors<float>& t, int threads, const RepPolicy& policy);
Result measure(Op op, const Case& c, Tensors<double>& t, int threads, const RepPolicy& policy);
} // namespace onednn

/// Times bnorm::format_csv and bnorm::parse_csv (one thread) on a rows × cols float64
/// array of random normal values. The text is kept for write_text().
class CsvBench {
public:
    CsvBench(std::int64_t rows, std::int64_t cols);
    Timing measure_format(const RepPolicy& policy);
    Timing measure_parse(const RepPolicy& policy);
    std::size_t text_bytes() const { return text_.size(); }
    const bnorm::Shape& shape() const { return array_.shape(); }
    /// Writes the CSV text to `path` (input of the end-to-end CSV run).
    void write_text(const std::string& path) const;

private:
    bnorm::Array array_;
    std::string text_;
};

} // namespace bench
