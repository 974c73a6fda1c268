#include "bnorm/csv.hpp"

#include "bnorm/error.hpp"
#include "parallel.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

namespace bnorm {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

/// A token as it may appear in a one-line message: control bytes are escaped (\r, \t,
/// \xHH), so that nothing from the file can break the line or drive the terminal.
std::string printable(std::string_view tok) {
    std::string out;
    for (const char ch : tok.substr(0, 40)) {
        const auto u = static_cast<unsigned char>(ch);
        if (ch == '\r') out += "\\r";
        else if (ch == '\t') out += "\\t";
        else if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", u);
        else out += ch;
    }
    if (tok.size() > 40) out += "...";
    return out;
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

class CsvParser {
public:
    CsvParser(std::string_view text, DType dtype, const std::string& name)
        : text_(text), dtype_(dtype), name_(name) {}

    template <class T> Array parse() {
        reject_binary();
        std::size_t pos = 0;
        if (text_.substr(0, 3) == "\xEF\xBB\xBF") pos = 3;
        std::vector<T> values;
        if (text_.size() > pos) { // reserve from the density of numbers at the start of the file
            const std::string_view head = text_.substr(pos, 1 << 16);
            const std::size_t commas = std::size_t(std::count(head.begin(), head.end(), ',')) +
                                       std::size_t(std::count(head.begin(), head.end(), '\n')) + 1;
            values.reserve(std::size_t(double(commas) * double(text_.size()) / double(head.size()) * 1.05) + 16);
        }
        std::int64_t cols = -1, rows = 0, first_line = 0;
        long long line = 0;
        while (pos < text_.size()) {
            ++line;
            std::size_t end = text_.find('\n', pos);
            if (end == std::string_view::npos) end = text_.size();
            std::string_view row = text_.substr(pos, end - pos);
            if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
            pos = end + 1;
            if (row.find_first_not_of(" \t") == std::string_view::npos) continue; // blank line

            std::int64_t n = 0;
            std::size_t f = 0; // start of the current field within row
            while (true) {
                // Fast path: a plain number (blanks around it allowed) ended by ',' or the end
                // of the row. Anything else goes through field(), which accepts the rarer
                // spellings or says precisely what is wrong.
                std::size_t comma;
                T v{};
                const char* const row_end = row.data() + row.size();
                const char* p = row.data() + f;
                while (p < row_end && is_blank(*p)) ++p;
                const auto r = std::from_chars(p, row_end, v);
                const char* q = r.ptr;
                while (q < row_end && is_blank(*q)) ++q;
                if (r.ec == std::errc() && r.ptr != p && (q == row_end || *q == ',') && std::isfinite(v)) {
                    comma = q == row_end ? std::string_view::npos : std::size_t(q - row.data());
                } else {
                    comma = row.find(',', f);
                    const std::size_t fend = comma == std::string_view::npos ? row.size() : comma;
                    v = field<T>(row.substr(f, fend - f), line, column(f), rows == 0 && n == 0,
                                 comma == std::string_view::npos && n > 0);
                }
                values.push_back(v);
                ++n;
                if (comma == std::string_view::npos) break;
                f = comma + 1;
                if (cols >= 0 && n == cols)
                    fail(line, column(f),
                         fmt::format("this row has more than {} values (line {} has {})", cols,
                                     first_line, cols));
            }
            if (cols < 0) cols = n, first_line = line;
            else if (n != cols)
                fail(line, column(row.size()),
                     fmt::format("this row has {} values, expected {} like line {}", n, cols, first_line));
            ++rows;
        }
        if (rows == 0)
            throw InputError::in_file(name_, "the CSV file has no numbers (it is empty or blank)");
        // The parsed values become the array's storage: no copy.
        auto owner = std::make_shared<std::vector<T>>(std::move(values));
        std::shared_ptr<std::byte> data(owner, reinterpret_cast<std::byte*>(owner->data()));
        return Array::adopt(dtype_, Shape{rows, cols}, std::move(data));
    }

private:
    [[noreturn]] void fail(long long line, long long col, const std::string& what) const {
        throw InputError::at(name_, line, col, what);
    }

    /// 1-based column of a byte offset within a row (a UTF-8 byte-order mark precedes
    /// the first row and so does not count).
    static long long column(std::size_t offset_in_row) { return static_cast<long long>(offset_in_row) + 1; }

    void reject_binary() const {
        if (text_.size() >= 4 && ((text_.substr(0, 4) == std::string_view("\xFF\xFE\0\0", 4)) ||
                                  (text_.substr(0, 4) == std::string_view("\0\0\xFE\xFF", 4))))
            throw InputError::at(name_, 1, 1, "the file is UTF-32 text; save it as UTF-8 or ASCII");
        if (text_.size() >= 2 && ((text_[0] == '\xFF' && text_[1] == '\xFE') ||
                                  (text_[0] == '\xFE' && text_[1] == '\xFF')))
            throw InputError::at(name_, 1, 1, "the file is UTF-16 text; save it as UTF-8 or ASCII");
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
                fail(line, col, fmt::format("'{}' overflows {}", printable(tok), dtype_name(dtype_)));
            return std::signbit(static_cast<T>(num[0] == '-' ? -1 : 1)) ? T(-0.0) : T(0.0);
        }
        if (r.ec != std::errc() || r.ptr != num.data() + num.size())
            bad_token(tok, line, col, first_field_of_file && r.ptr == num.data());
        return v;
    }

    [[noreturn]] void bad_token(std::string_view tok, long long line, long long col, bool maybe_header) const {
        const std::string shown = printable(tok);
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
};

} // namespace

Array parse_csv(std::string_view text, DType dtype, const std::string& name) {
    CsvParser p(text, dtype, name);
    return dispatch(dtype, [&](auto t) { return p.parse<decltype(t)>(); });
}

void format_csv(const Array& a, const std::function<void(std::string_view)>& sink, int threads) {
    const std::int64_t n = a.size();
    const Shape& s = a.shape();
    const std::int64_t per_line = s.size() >= 2 ? (s[0] == 0 ? 0 : n / s[0]) : 1;
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
