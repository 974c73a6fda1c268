// Errors at the library boundary.
//
// Every error a user can cause is a bnorm::Error carrying one line of text that names
// what to fix: the file, the line and column for CSV, the expected and found shapes.
// The CLI prints `bnorm: error: <what()>` and exits with exit_code(). Kernels never
// throw; they are only called once the inputs have been checked.
#pragma once

#include "bnorm/config.hpp"

#include <stdexcept>
#include <string>

namespace bnorm {

/// Process exit codes of the CLI, shared by every subcommand.
enum ExitCode : int {
    kExitOk = 0,          ///< success
    kExitCheckFailed = 1, ///< a check failed (gradcheck)
    kExitBadInput = 2,    ///< bad usage or bad input
};

/// Base of all errors bnorm reports. what() is a single line (no '\n').
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, int exit_code = kExitBadInput)
        : std::runtime_error(message), exit_code_(exit_code) {}
    int exit_code() const noexcept { return exit_code_; }

private:
    int exit_code_;
};

/// Something is wrong with the content of a file (or an in-memory array standing for
/// one). The message starts with the file name: "x.csv:3:7: ..." or "x.npy: ...".
class InputError : public Error {
public:
    using Error::Error;
    /// "<file>: <problem>"
    static InputError in_file(const std::string& file, const std::string& problem) {
        return InputError(file + ": " + problem);
    }
    /// "<file>:<line>:<column>: <problem>" (1-based physical line and column)
    static InputError at(const std::string& file, long long line, long long column,
                         const std::string& problem) {
        return InputError(file + ":" + std::to_string(line) + ":" + std::to_string(column) +
                          ": " + problem);
    }
};

/// The options do not make sense together (bad axis, bad eps, same path twice...).
class UsageError : public Error {
public:
    using Error::Error;
};

/// The operating system refused an operation (open, write, rename).
class SystemError : public Error {
public:
    using Error::Error;
};

} // namespace bnorm
