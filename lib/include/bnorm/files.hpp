// Reading arrays from files and writing them without ever leaving a partial file.
#pragma once

#include "bnorm/array.hpp"

#include <optional>
#include <string>
#include <vector>

namespace bnorm {

enum class Format { npy, csv };

/// The format a path's extension names (.npy or .csv, any letter case).
/// Throws UsageError for anything else.
Format format_of(const std::string& path);

/// The whole content of a regular file. Throws InputError naming the file when it is
/// missing, unreadable, a directory, or not a regular file.
std::string read_file(const std::string& path);

/// How to read an array from a CSV file (NPY files carry their own dtype and shape, but
/// dtype bfloat16 reads an NPY file of '<u2' as bfloat16 bit patterns).
struct CsvRead {
    DType dtype = DType::f64;       ///< dtype to parse the numbers into (correctly rounded)
    std::optional<Shape> shape;     ///< reshape the (rows, cols) table into this shape;
                                    ///< shape[0] must equal rows, the product the count
    std::string shape_source = "--shape"; ///< where `shape` came from, for messages
    int threads = 0;                      ///< threads to parse on (0: all cores)
};

/// Reads an .npy or .csv file into an array. For CSV, `csv` says how.
Array load_array(const std::string& path, const CsvRead& csv = {});

/// An output written to a temporary file beside its target and renamed into place by
/// commit(). If commit() is never reached (an error, an exception), the destructor removes
/// the temporary file and the target is left as it was. A signal that ends the process
/// skips destructors: see remove_pending_files.
class PendingFile {
public:
    /// Creates the temporary file "<dir>/.<name>.tmp-XXXXXX". Throws SystemError.
    explicit PendingFile(std::string target);
    PendingFile(PendingFile&&) noexcept;
    PendingFile& operator=(PendingFile&&) = delete;
    PendingFile(const PendingFile&) = delete;
    ~PendingFile();

    /// Allocates the disk space of a file of `bytes` before it is written, where the file
    /// system can (fallocate): a full disk is reported before any work, and ext4 has no
    /// delayed allocation left to force (and write out) when commit() renames the file
    /// over an existing one. Throws SystemError when the space is not there.
    void reserve(std::size_t bytes);
    /// Appends bytes. Throws SystemError (disk full, file size limit...).
    void write(const void* data, std::size_t n);
    /// Flushes, closes and renames onto the target. Throws SystemError.
    void commit();
    const std::string& target() const { return target_; }

private:
    void discard() noexcept;
    std::string target_;
    std::string temp_;
    int fd_ = -1;
    int slot_ = -1; // index in the signal-cleanup registry
};

/// Removes the temporary file of every PendingFile neither committed nor destroyed yet
/// (up to 32 at a time, paths under 4096 bytes; others are removed by their destructor
/// only). Async-signal-safe: it reads a fixed table and calls unlink(2), nothing else, so
/// a signal handler may call it. The library installs no signal handler, since the
/// process's signals belong to the program: a program that wants no temporary file left
/// when SIGINT, SIGTERM, SIGHUP, SIGPIPE or SIGBUS (an input file, memory-mapped, was
/// truncated by another process) ends it calls this from its handler and then re-raises
/// the signal with the default action (the bnorm CLI does, app/signals.cpp). It should
/// also ignore SIGXFSZ, so that a write past RLIMIT_FSIZE fails with a SystemError
/// instead of killing the process and leaving the temporary file.
void remove_pending_files() noexcept;

/// Writes `a` to `path` in the format of its extension (NPY byte-identical to np.save,
/// CSV shortest round-trip, formatted on `threads` threads, 0: all cores) into a
/// PendingFile, not yet committed.
PendingFile write_array(const std::string& path, const Array& a, int threads = 0);

/// Checks, before any work, that the outputs can be written without harming the inputs:
/// every input is an existing regular file; no output is the same file as an input
/// (device and inode, so links and other spellings are caught) or as another output;
/// every output's folder exists and the output is not a folder. File types are not
/// checked here (see format_of). Each entry is
/// (option name, path). Throws UsageError/InputError naming the offending paths.
void check_paths(const std::vector<std::pair<std::string, std::string>>& inputs,
                 const std::vector<std::pair<std::string, std::string>>& outputs);

} // namespace bnorm
