// CSV as bnorm reads and writes it: comma-separated numbers, no header, one row per
// index of the first axis with the remaining axes flattened into columns.
#pragma once

#include "bnorm/array.hpp"

#include <functional>
#include <string>
#include <string_view>

namespace bnorm {

/// Parses CSV text into a (rows, cols) array of `dtype`. `name` is used in messages.
/// Accepts a UTF-8 byte-order mark, CRLF or LF, blank lines, spaces and tabs around
/// fields, a leading '+', nan/inf/infinity in any letter case, subnormals; a value that
/// underflows below the smallest subnormal reads as a signed zero (its correct rounding).
/// Parsing is locale-independent and correctly rounded straight to `dtype`
/// (std::from_chars: a float32 value is not rounded through double; float16 and bfloat16
/// are rounded from the double value, except at their half-way points, where the text
/// itself decides the side: never rounded twice). Half types give their bit patterns.
/// Throws InputError "<name>:<line>:<column>: ..." (physical, 1-based) on: an empty file,
/// a NUL byte, UTF-16 text, a header row, an empty field or trailing delimiter, a token
/// that is not entirely one number, a value that overflows `dtype`, ragged rows; the
/// first of them in the file.
/// Parsed on `threads` threads (0: all cores), each taking a share of the lines (texts
/// of 64 KiB or more per thread); the array and the message do not depend on the
/// thread count.
Array parse_csv(std::string_view text, DType dtype, const std::string& name, int threads = 0);

/// Writes `a` as CSV: rank >= 2 gives shape[0] lines of size/shape[0] values, rank 1 one
/// value per line, rank 0 one line. Every number is the shortest text that parses back
/// to the same value of a's dtype (std::to_chars; half types: the fewest significant
/// digits that read back to the value). Lines end with '\n'.
/// The text is handed to `sink` in order, in chunks of about 1 MiB, formatted on
/// `threads` threads (0: all cores); the text does not depend on the thread count.
void format_csv(const Array& a, const std::function<void(std::string_view)>& sink, int threads = 0);

} // namespace bnorm
