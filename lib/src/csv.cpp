#include "bnorm/csv.hpp"

#include "bnorm/error.hpp"
#include "bnorm/half.hpp"
#include "parallel.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cfenv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <cstdint>
#include <memory>
#include <vector>

namespace bnorm {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

/// A token as it may appear in a one-line message: its first 40 bytes, cut before a
/// whole character rather than inside one, through printable() (control bytes and bytes
/// that are not UTF-8 escaped), so that nothing from the file can break the line, drive
/// the terminal or make the message invalid UTF-8.
std::string shown_token(std::string_view tok) {
    constexpr std::size_t kShown = 40;
    if (tok.size() <= kShown) return printable(tok);
    std::size_t cut = kShown;
    for (int k = 0; k < 3 && (static_cast<unsigned char>(tok[cut]) & 0xc0) == 0x80; ++k) --cut;
    return printable(tok.substr(0, cut)) + "...";
}

/// Decimal exponent of the leading digit of a numeric token ("123e5" -> 7, "0.001" -> -3);
/// used only to tell overflow from underflow when from_chars reports out of range.
long long decimal_magnitude(std::string_view tok) {
    std::size_t i = 0;
    if (i < tok.size() && (tok[i] == '-' || tok[i] == '+')) ++i;
    long long digits_before_point = 0, leading_zeros_after_point = 0;
    bool seen_nonzero = false, after_point = false;
    for (; i < tok.size() && tok[i] != 'e' && tok[i] != 'E'; ++i) {
        if (tok[i] == '.') { after_point = true; continue; }
        if (!after_point && (seen_nonzero || tok[i] != '0')) ++digits_before_point;
        if (tok[i] != '0') seen_nonzero = true;
        if (after_point && !seen_nonzero) ++leading_zeros_after_point;
    }
    long long exp = 0;
    if (i < tok.size()) {
        // Clamp: only the sign and rough size matter.
        std::string_view e = tok.substr(i + 1);
        if (!e.empty() && e[0] == '+') e.remove_prefix(1);
        const auto r = std::from_chars(e.data(), e.data() + e.size(), exp);
        if (r.ec == std::errc::result_out_of_range) exp = (!e.empty() && e[0] == '-') ? -1'000'000 : 1'000'000;
        if (exp > 1'000'000) exp = 1'000'000;
        if (exp < -1'000'000) exp = -1'000'000;
    }
    return (digits_before_point > 0 ? digits_before_point - 1 : -leading_zeros_after_point - 1) + exp;
}

/// Where a thread's share of the text starts and how much of it there is: whole lines
/// [begin, end), `lines` of them, `rows` not blank; its first line's number is
/// line_base + 1 and its first row's index row_base.
struct Chunk {
    std::size_t begin = 0, end = 0;
    long long lines = 0, line_base = 0;
    std::int64_t rows = 0, row_base = 0;
};

/// Parsing splits the text into one chunk per thread once it has this much per thread.
constexpr std::size_t kMinChunkBytes = 1 << 16;

class CsvParser {
public:
    CsvParser(std::string_view text, DType dtype, const std::string& name)
        : text_(text), dtype_(dtype), name_(name) {}

    /// The text's numbers as an array of T, or InputError for the first failure in file
    /// order (parse_text), whatever the number of threads.
    template <class T> Array parse(int threads) {
        reject_wide_text();
        try {
            return parse_text<T>(threads);
        } catch (const InputError&) {
            // A NUL byte is never blank and fails any number it is in, so text with one
            // never parses; when the parse fails, a NUL anywhere is what is reported. (Not
            // looked for first: a pass over the text, 3% of the time of a parse, 508 → 523
            // MB/s.)
            reject_nul();
            throw;
        }
    }

private:
    /// The first row fixes the column count; the rest of the text is cut into chunks of
    /// whole lines, whose lines and rows are counted (in parallel), so that each chunk
    /// knows its line numbers and where its rows go in the array; then every chunk is
    /// parsed straight into place (in parallel). The first failure in file order is the
    /// one reported, with the same message whatever the number of threads.
    template <class T> Array parse_text(int threads) {
        std::size_t pos = text_.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
        long long line = 0;
        std::vector<T> first; // the first row's values
        while (pos < text_.size() && first.empty()) {
            ++line;
            const std::string_view row = line_at(pos);
            if (!blank(row)) {
                row_values<T>(row, line, true, [&](T v) { first.push_back(v); });
                cols_ = std::int64_t(first.size()), first_line_ = line;
            }
        }
        if (first.empty()) throw InputError::in_file(name_, "the CSV file has no numbers (it is empty or blank)");

        const int t = detail::resolve_threads(threads);
        std::vector<Chunk> chunks = cut(pos, t);
        detail::parallel_for(std::int64_t(chunks.size()), t, [&](std::int64_t k0, std::int64_t k1) {
            for (std::int64_t k = k0; k < k1; ++k) count(chunks[std::size_t(k)]);
        });
        std::int64_t rows = 1;
        for (Chunk& c : chunks) c.line_base = line, c.row_base = rows, line += c.lines, rows += c.rows;

        // The values are parsed straight into the array (a large one on fresh pages, with
        // huge pages where the kernel gives them: 1,000,000 x 16 float64 parsed at 490 MB/s
        // into the heap's 4 KiB pages, at 508 so, on one Ice Lake core).
        Array out(dtype_of<T>(), Shape{rows, cols_}); // half types: their values in double first
        T* const values = out.data<T>();
        std::copy(first.begin(), first.end(), values);
        detail::parallel_for(std::int64_t(chunks.size()), t, [&](std::int64_t k0, std::int64_t k1) {
            for (std::int64_t k = k0; k < k1; ++k) parse_chunk(chunks[std::size_t(k)], values);
        });
        return out;
    }

    /// The line starting at `pos` without its line end (LF, or CRLF), and pos moved past it.
    std::string_view line_at(std::size_t& pos) const {
        std::size_t end = text_.find('\n', pos);
        if (end == std::string_view::npos) end = text_.size();
        std::string_view row = text_.substr(pos, end - pos);
        if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
        pos = end + 1;
        return row;
    }

    static bool blank(std::string_view row) { return row.find_first_not_of(" \t") == std::string_view::npos; }

    /// [pos, end of text) cut into up to `threads` chunks of whole lines, of about equal
    /// size, none under kMinChunkBytes unless it is the only one.
    std::vector<Chunk> cut(std::size_t pos, int threads) const {
        const std::size_t size = text_.size() - std::min(pos, text_.size());
        const auto n = std::max<std::size_t>(1, std::min<std::size_t>(std::size_t(threads), size / kMinChunkBytes));
        std::vector<Chunk> chunks(n);
        std::size_t begin = std::min(pos, text_.size());
        for (std::size_t k = 0; k < n; ++k) {
            std::size_t end = text_.size();
            if (k + 1 < n) { // the end of the line that the even cut falls in
                end = text_.find('\n', std::max(begin, pos + size / n * (k + 1)));
                end = end == std::string_view::npos ? text_.size() : end + 1;
            }
            chunks[k].begin = begin, chunks[k].end = end, begin = end;
        }
        return chunks;
    }

    /// Counts the lines and the rows (lines not blank) of a chunk.
    void count(Chunk& c) const {
        for (std::size_t pos = c.begin; pos < c.end;) {
            ++c.lines;
            if (!blank(line_at(pos))) ++c.rows;
        }
    }

    /// Parses the rows of a chunk into out, at row c.row_base.
    template <class T> void parse_chunk(const Chunk& c, T* out) const {
        long long line = c.line_base;
        T* o = out + c.row_base * cols_;
        for (std::size_t pos = c.begin; pos < c.end;) {
            ++line;
            if (plain_row(pos, c.end, o)) { // the common case, with no look for the line end first
                o += cols_;
                continue;
            }
            const std::string_view row = line_at(pos);
            if (blank(row)) continue;
            const std::int64_t n = row_values<T>(row, line, false, [&](T v) { *o++ = v; });
            if (n != cols_)
                fail(line, column(row.size()),
                     fmt::format("this row has {} {}, expected {} like line {}", n, n == 1 ? "value" : "values", cols_,
                                 first_line_));
        }
    }

    /// A plain number from p on (blanks before and after it allowed, none of the text from
    /// `stop` on): its value into v and where its trailing blanks end; or null when the
    /// text there is anything else (no number, another spelling, not finite), which
    /// field() then takes.
    template <class T> static const char* plain_number(const char* p, const char* stop, T& v) {
        while (p < stop && is_blank(*p)) ++p;
        const auto r = std::from_chars(p, stop, v);
        if (r.ec != std::errc() || r.ptr == p || !std::isfinite(v)) return nullptr;
        const char* q = r.ptr;
        while (q < stop && is_blank(*q)) ++q;
        return q;
    }

    /// The row at pos as cols_ plain numbers (plain_number, as row_values' fast path
    /// takes them) into out, and pos moved past its line end (LF, CRLF, or `end`);
    /// or false, pos unchanged, when the line is anything else (blank, other spellings of
    /// numbers, a wrong count, an error), which row_values then takes. A number cannot
    /// span a line end, so from_chars needs no line end to stop at: parsing 1,000,000 x
    /// 16 float64 went from 523 to 560 MB/s when lines were no longer looked for first.
    template <class T> bool plain_row(std::size_t& pos, std::size_t end, T* out) const {
        if (is_half(dtype_)) return false; // every half value goes through field()'s rounding
        const char* p = text_.data() + pos;
        const char* const stop = text_.data() + end;
        for (std::int64_t k = 0; k < cols_; ++k) {
            T v{};
            p = plain_number(p, stop, v);
            if (!p) return false;
            if (k + 1 < cols_) {
                if (p == stop || *p != ',') return false;
                ++p;
            }
            out[k] = v;
        }
        if (p < stop && *p == '\r') ++p;
        if (p < stop && *p != '\n') return false;
        pos = std::size_t(p - text_.data()) + (p < stop ? 1 : 0);
        return true;
    }

    /// Parses one row that is not blank (its text without the line end), calling put(v)
    /// for each value in order, and returns how many there were. Once the column count
    /// is known, a row with more values fails before the one too many is put.
    template <class T, class Put>
    std::int64_t row_values(std::string_view row, long long line, bool first_row, Put&& put) const {
        std::int64_t n = 0;
        std::size_t f = 0; // start of the current field within row
        while (true) {
            // Fast path: a plain number (blanks around it allowed) ended by ',' or the end
            // of the row. Anything else goes through field(), which accepts the rarer
            // spellings or says precisely what is wrong.
            std::size_t comma;
            T v{};
            const char* const row_end = row.data() + row.size();
            const char* const q = is_half(dtype_) ? nullptr : plain_number(row.data() + f, row_end, v);
            if (q && (q == row_end || *q == ',')) {
                comma = q == row_end ? std::string_view::npos : std::size_t(q - row.data());
            } else {
                comma = row.find(',', f);
                const std::size_t fend = comma == std::string_view::npos ? row.size() : comma;
                v = field<T>(row.substr(f, fend - f), line, column(f), first_row && n == 0,
                             comma == std::string_view::npos && n > 0);
            }
            put(v);
            ++n;
            if (comma == std::string_view::npos) return n;
            f = comma + 1;
            if (cols_ >= 0 && n == cols_)
                fail(line, column(f),
                     fmt::format("this row has more than {} values (line {} has {})", cols_, first_line_, cols_));
        }
    }

private:
    [[noreturn]] void fail(long long line, long long col, const std::string& what) const {
        throw InputError::at(name_, line, col, what);
    }

    /// 1-based column of a byte offset within a row (a UTF-8 byte-order mark precedes
    /// the first row and so does not count).
    static long long column(std::size_t offset_in_row) { return static_cast<long long>(offset_in_row) + 1; }

    /// Refuses text that starts with a UTF-16 or UTF-32 byte-order mark.
    void reject_wide_text() const {
        if (text_.size() >= 4 && ((text_.substr(0, 4) == std::string_view("\xFF\xFE\0\0", 4)) ||
                                  (text_.substr(0, 4) == std::string_view("\0\0\xFE\xFF", 4))))
            throw InputError::at(name_, 1, 1, "the file is UTF-32 text; save it as UTF-8 or ASCII");
        if (text_.size() >= 2 && ((text_[0] == '\xFF' && text_[1] == '\xFE') ||
                                  (text_[0] == '\xFE' && text_[1] == '\xFF')))
            throw InputError::at(name_, 1, 1, "the file is UTF-16 text; save it as UTF-8 or ASCII");
    }

    /// Refuses text with a NUL byte: UTF-16 without a byte-order mark, or not text.
    void reject_nul() const {
        const std::size_t nul = text_.find('\0');
        if (nul == std::string_view::npos) return;
        if (nul <= 1 && text_.size() > 2)
            throw InputError::at(name_, 1, 1, "the file looks like UTF-16 text (NUL bytes between "
                                              "characters); save it as UTF-8 or ASCII");
        long long line = 1;
        std::size_t line_start = 0;
        for (std::size_t i = 0; i < nul; ++i)
            if (text_[i] == '\n') ++line, line_start = i + 1;
        fail(line, static_cast<long long>(nul - line_start) + 1, "NUL byte: this is not a text file");
    }

    template <class T>
    T field(std::string_view raw, long long line, long long col, bool first_field_of_file,
            bool last_field_of_row) const {
        std::size_t a = 0, b = raw.size();
        while (a < b && is_blank(raw[a])) ++a;
        while (b > a && is_blank(raw[b - 1])) --b;
        const std::string_view tok = raw.substr(a, b - a);
        col += static_cast<long long>(a);
        if (tok.empty()) {
            if (last_field_of_row)
                fail(line, col, "empty field after the last ',' (trailing delimiters are not allowed)");
            fail(line, col, "empty field (every field must hold a number)");
        }
        std::string_view num = tok;
        if (num[0] == '+') {
            num.remove_prefix(1);
            if (num.empty() || num[0] == '-' || num[0] == '+') bad_token(tok, line, col, false);
        }
        T v{};
        const auto r = std::from_chars(num.data(), num.data() + num.size(), v);
        if (r.ec == std::errc::result_out_of_range && r.ptr == num.data() + num.size()) {
            if (decimal_magnitude(num) > 0)
                fail(line, col, fmt::format("'{}' overflows {}", shown_token(tok), dtype_name(dtype_)));
            return std::signbit(static_cast<T>(num[0] == '-' ? -1 : 1)) ? T(-0.0) : T(0.0);
        }
        if (r.ec != std::errc() || r.ptr != num.data() + num.size())
            bad_token(tok, line, col, first_field_of_file && r.ptr == num.data());
        if constexpr (std::is_same_v<T, double>)
            if (is_half(dtype_)) return half_value(v, num, tok, line, col);
        return v;
    }

    /// The token's value rounded once to the half type, given v, its correct rounding to
    /// double. Rounding v again would round twice where v is a half-way point of the half
    /// type that the text is not: there, the text parsed rounding down and up (strtod
    /// honours the rounding mode; the parser's own from_chars does not) tells on which side
    /// of the half-way point it lies.
    double half_value(double v, std::string_view num, std::string_view tok, long long line, long long col) const {
        double h = round_to(dtype_, v);
        if (std::isinf(h) && std::isfinite(v))
            fail(line, col, fmt::format("'{}' overflows {}", shown_token(tok), dtype_name(dtype_)));
        const double other = round_to(dtype_, h + (v - h) * 2); // the neighbour across v, if v is half-way
        if (std::isfinite(v) && v != h && v - h == other - v) {
            const std::string text(num);
            const int mode = std::fegetround();
            std::fesetround(FE_DOWNWARD);
            const double below = std::strtod(text.c_str(), nullptr);
            std::fesetround(FE_UPWARD);
            const double above = std::strtod(text.c_str(), nullptr);
            std::fesetround(mode);
            if (below < v) h = std::min(h, other);      // the text is under the half-way point
            else if (above > v) h = std::max(h, other); // over it
        }
        return h;
    }

    [[noreturn]] void bad_token(std::string_view tok, long long line, long long col, bool maybe_header) const {
        const std::string shown = shown_token(tok);
        if (tok.find('\r') != std::string_view::npos)
            fail(line, col, fmt::format("'{}' is not a number: a carriage return inside a line (the "
                                        "file has old Mac CR-only line endings? use LF or CRLF)",
                                        shown));
        if (tok.front() == '"' || tok.front() == '\'')
            fail(line, col, fmt::format("'{}' is not a number: quoted fields are not supported (write "
                                        "plain numbers)",
                                        shown));
        if (maybe_header)
            fail(line, col, fmt::format("'{}' is not a number: the first row looks like a header, "
                                        "and headers are not supported (delete that line)",
                                        shown));
        if (tok.find(';') != std::string_view::npos)
            fail(line, col, fmt::format("'{}' is not a number: bnorm reads comma-separated values "
                                        "with '.' as the decimal point, not ';'",
                                        shown));
        fail(line, col, fmt::format("'{}' is not a number (a number must fill its whole field)", shown));
    }

    std::string_view text_;
    DType dtype_;
    const std::string& name_;
    std::int64_t cols_ = -1;   // values per row, once the first row is read
    long long first_line_ = 0; // the first row's line
};

} // namespace

Array parse_csv(std::string_view text, DType dtype, const std::string& name, int threads) {
    CsvParser p(text, dtype, name);
    if (is_half(dtype)) return round_array(p.parse<double>(threads), dtype); // exact: the values are the type's
    return dispatch(dtype, [&](auto t) { return p.parse<decltype(t)>(threads); });
}

namespace {

/// Half types: every value as the shortest text (in digits) that reads back as the same
/// value of the type (5 significant digits always suffice for float16, 4 for bfloat16).
void format_half_csv(const Array& a, const std::function<void(std::string_view)>& sink, std::int64_t per_line) {
    const Array v = widen_to_f64(a);
    const double* x = v.data<double>();
    std::string text;
    char buf[64];
    for (std::int64_t i = 0, column = 0; i < a.size(); ++i) {
        char* end = buf;
        if (!std::isfinite(x[i])) {
            end = std::to_chars(buf, buf + sizeof buf, x[i]).ptr;
        } else {
            for (int digits = 1; digits <= 17; ++digits) {
                end = std::to_chars(buf, buf + sizeof buf, x[i], std::chars_format::general, digits).ptr;
                double back = 0;
                std::from_chars(buf, end, back);
                if (round_to(a.dtype(), back) == x[i]) break;
            }
        }
        text.append(buf, end);
        text += ++column == per_line ? '\n' : ',';
        if (column == per_line) column = 0;
        if (text.size() >= (1 << 20)) sink(text), text.clear();
    }
    sink(text);
}

} // namespace

void format_csv(const Array& a, const std::function<void(std::string_view)>& sink, int threads) {
    const std::int64_t n = a.size();
    const Shape& s = a.shape();
    const std::int64_t per_line = s.size() >= 2 ? (s[0] == 0 ? 0 : n / s[0]) : 1;
    if (is_half(a.dtype())) return format_half_csv(a, sink, per_line);
    // The values are cut into blocks of kBlock, each formatted into its own buffer; a
    // round formats one block per thread, then hands the texts to `sink` in order.
    constexpr std::int64_t kBlock = 1 << 16;
    constexpr std::size_t kMaxNumber = 32; // to_chars needs at most 24 + the separator
    const std::int64_t blocks = (n + kBlock - 1) / kBlock;
    constexpr int kMaxThreads = 16; // 2 MiB of text each; the sink takes the text at one thread's pace anyway
    const int t = int(std::min<std::int64_t>({detail::resolve_threads(threads), kMaxThreads, std::max<std::int64_t>(1, blocks)}));
    std::vector<std::vector<char>> texts(std::size_t(t), std::vector<char>(std::size_t(std::min(n, kBlock)) * kMaxNumber));
    std::vector<std::size_t> lengths(static_cast<std::size_t>(t));
    dispatch(a.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* v = a.data<T>();
        auto format_block = [&](std::int64_t b, std::size_t slot) {
            const std::int64_t i0 = b * kBlock, i1 = std::min(n, i0 + kBlock);
            char* const start = texts[slot].data();
            char* out = start;
            std::int64_t column = i0 % per_line; // the place of value i0 in its line
            for (std::int64_t i = i0; i < i1; ++i) {
                out = std::to_chars(out, out + kMaxNumber, v[i]).ptr; // straight into the buffer
                *out++ = ++column == per_line ? '\n' : ',';
                if (column == per_line) column = 0;
            }
            lengths[slot] = std::size_t(out - start);
        };
        for (std::int64_t b0 = 0; b0 < blocks; b0 += t) {
            const std::int64_t count = std::min<std::int64_t>(t, blocks - b0);
            detail::parallel_for(count, t, [&](std::int64_t j0, std::int64_t j1) {
                for (std::int64_t j = j0; j < j1; ++j) format_block(b0 + j, std::size_t(j));
            });
            for (std::int64_t j = 0; j < count; ++j) sink({texts[std::size_t(j)].data(), lengths[std::size_t(j)]});
        }
    });
}

} // namespace bnorm
