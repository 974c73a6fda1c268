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
#include <string_view>

namespace bnorm {

/// `text` made fit for a one-line message on a terminal or in a log read as UTF-8:
/// valid UTF-8 passes unchanged ('café', '€'); '\n', '\r' and '\t' become those escapes,
/// other C0 controls and DEL "\xHH", C1 controls (U+0080..U+009F) "\u00HH", spaces other
/// than ' ' and invisible characters (U+00A0, U+2000..U+200F, U+2028..U+202F, U+205F,
/// U+2060, U+3000, U+FEFF) "\uHHHH", and every
/// byte that does not belong to a valid UTF-8 sequence (a stray continuation byte, an
/// overlong form, a surrogate, a truncated sequence, 0xF5..0xFF) "\xHH". The result is
/// valid UTF-8 without control characters, and printable(printable(s)) == printable(s).
/// File names, file content and option values reach messages only through it (every
/// Error applies it to its message), because a byte from outside can otherwise break the
/// line, drive the terminal, or make a reader that decodes stderr strictly fail.
inline std::string printable(std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(text.size());
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const auto escape = [&](const char* prefix, unsigned char u) {
        out += prefix;
        out += kHex[u >> 4];
        out += kHex[u & 15];
    };
    for (std::size_t i = 0; i < text.size();) {
        const unsigned char u = byte(i);
        if (u < 0x80) {
            if (u == '\n') out += "\\n";
            else if (u == '\r') out += "\\r";
            else if (u == '\t') out += "\\t";
            else if (u < 0x20 || u == 0x7f) escape("\\x", u);
            else out += static_cast<char>(u);
            ++i;
            continue;
        }
        // The well-formed sequences of the Unicode standard (table 3-7): the lead byte
        // sets the length and the range of the second byte, which excludes overlong
        // forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
        std::size_t n = 0;
        unsigned char lo = 0x80, hi = 0xbf;
        if (u >= 0xc2 && u <= 0xdf) n = 2;
        else if (u >= 0xe0 && u <= 0xef) n = 3, lo = u == 0xe0 ? 0xa0 : 0x80, hi = u == 0xed ? 0x9f : 0xbf;
        else if (u >= 0xf0 && u <= 0xf4) n = 4, lo = u == 0xf0 ? 0x90 : 0x80, hi = u == 0xf4 ? 0x8f : 0xbf;
        bool valid = n != 0 && n <= text.size() - i;
        for (std::size_t k = 1; valid && k < n; ++k)
            valid = byte(i + k) >= (k == 1 ? lo : 0x80) && byte(i + k) <= (k == 1 ? hi : 0xbf);
        if (!valid) {
            escape("\\x", u); // this byte alone; the next one starts afresh
            ++i;
        } else if (n == 2 && u == 0xc2 && byte(i + 1) <= 0x9f) {
            escape("\\u00", byte(i + 1)); // a C1 control, e.g. U+009B, the one-character CSI
            i += 2;
        } else if (const char32_t c = n == 2 ? char32_t((u & 0x1f) << 6 | (byte(i + 1) & 0x3f))
                                     : n == 3 ? char32_t((u & 0x0f) << 12 | (byte(i + 1) & 0x3f) << 6 | (byte(i + 2) & 0x3f))
                                              : 0;
                   c == 0xa0 || (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
                   (c >= 0x205f && c <= 0x2060) || c == 0x3000 || c == 0xfeff) {
            // a space that looks like ' ' (U+00A0, U+2000..U+200A, U+3000...) or an invisible
            // one (U+200B, U+FEFF...): "\uHHHH", so that "' 2' is not a number" shows why
            out += "\\u";
            out += kHex[c >> 12], out += kHex[(c >> 8) & 15], out += kHex[(c >> 4) & 15], out += kHex[c & 15];
            i += n;
        } else {
            out.append(text.substr(i, n));
            i += n;
        }
    }
    return out;
}

/// Process exit codes of the CLI, shared by every subcommand.
enum ExitCode : int {
    kExitOk = 0,          ///< success
    kExitCheckFailed = 1, ///< a check failed (gradcheck)
    kExitBadInput = 2,    ///< bad usage or bad input
};

/// Base of all errors bnorm reports. what() is a single line of valid UTF-8 (the message
/// passes through printable(), whatever bytes the file names and values in it hold).
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, int exit_code = kExitBadInput)
        : std::runtime_error(printable(message)), exit_code_(exit_code) {}
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
