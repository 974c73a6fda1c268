#include "bnorm/npy.hpp"

#include "bnorm/error.hpp"

#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <optional>
#include <string_view>
#include <type_traits>
#include <vector>

namespace bnorm {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr std::size_t kPrefixLen = 8;          // magic + 2 version bytes
constexpr std::size_t kMaxHeaderLen = 10000;   // numpy's own cap (np.load max_header_size)
constexpr std::size_t kArrayAlign = 64;        // numpy.lib.format.ARRAY_ALIGN
constexpr std::size_t kGrowthAxisDigits = 21;  // numpy.lib.format.GROWTH_AXIS_MAX_DIGITS

// ---- the header: a Python dict literal ---------------------------------------------

struct Header {
    std::string descr;
    bool fortran_order = false;
    Shape shape;
};

/// A recursive-descent reader for exactly the literal np.save writes:
/// {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
/// Keys in any order, ' or " quotes, optional trailing commas, any spacing.
class HeaderParser {
public:
    HeaderParser(std::string_view text, const std::string& file) : s_(text), file_(file) {}

    Header parse() {
        Header h;
        bool seen_descr = false, seen_fortran = false, seen_shape = false;
        skip_space();
        expect('{', "the header must be a dict literal starting with '{'");
        skip_space();
        while (peek() != '}') {
            const std::string key = string_literal("a quoted key");
            skip_space();
            expect(':', fmt::format("expected ':' after key '{}'", key));
            skip_space();
            auto once = [&](bool& seen) {
                if (seen) fail(fmt::format("key '{}' appears twice", key));
                seen = true;
            };
            if (key == "descr") {
                once(seen_descr);
                if (peek() == '[') fail("structured dtypes (a list descr) are not supported; "
                                        "save a plain float32 or float64 array");
                h.descr = string_literal("a quoted dtype string for 'descr'");
            } else if (key == "fortran_order") {
                once(seen_fortran);
                h.fortran_order = boolean();
            } else if (key == "shape") {
                once(seen_shape);
                h.shape = shape_tuple();
            } else {
                fail(fmt::format("unexpected key '{}' (an NPY header has exactly descr, "
                                 "fortran_order and shape)",
                                 key));
            }
            skip_space();
            if (peek() == ',') {
                ++pos_;
                skip_space();
            } else if (peek() != '}') {
                fail("expected ',' or '}' in the header dict");
            }
        }
        ++pos_; // '}'
        skip_space();
        if (pos_ != s_.size()) fail("unexpected text after the header dict");
        if (!seen_descr) fail("the header has no 'descr' key");
        if (!seen_fortran) fail("the header has no 'fortran_order' key");
        if (!seen_shape) fail("the header has no 'shape' key");
        return h;
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw InputError::in_file(file_, "bad NPY header: " + what);
    }
    char peek() const {
        if (pos_ >= s_.size()) fail("the header dict is not closed");
        return s_[pos_];
    }
    void skip_space() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' ||
                                    s_[pos_] == '\r'))
            ++pos_;
    }
    void expect(char c, const std::string& what) {
        if (peek() != c) fail(what);
        ++pos_;
    }
    std::string string_literal(const std::string& what) {
        const char q = peek();
        if (q != '\'' && q != '"') fail("expected " + what);
        const std::size_t end = s_.find(q, pos_ + 1);
        if (end == std::string_view::npos) fail("unterminated string");
        std::string out(s_.substr(pos_ + 1, end - pos_ - 1));
        if (out.find('\\') != std::string::npos) fail("escapes in header strings are not supported");
        pos_ = end + 1;
        return out;
    }
    bool boolean() {
        if (s_.substr(pos_, 4) == "True") return pos_ += 4, true;
        if (s_.substr(pos_, 5) == "False") return pos_ += 5, false;
        fail("'fortran_order' must be True or False");
    }
    Shape shape_tuple() {
        expect('(', "'shape' must be a tuple of integers like (3, 4)");
        Shape shape;
        bool trailing_comma = false;
        skip_space();
        while (peek() != ')') {
            shape.push_back(dimension());
            if (shape.size() > kMaxRank)
                fail(fmt::format("'shape' has more than {} axes (numpy before 2.0 reads at most {})", kMaxRank,
                                 kMaxRank));
            skip_space();
            trailing_comma = false;
            if (peek() == ',') {
                ++pos_;
                trailing_comma = true;
                skip_space();
            } else if (peek() != ')') {
                fail("expected ',' or ')' in 'shape'");
            }
        }
        ++pos_;
        if (shape.size() == 1 && !trailing_comma)
            fail("'shape' (n) is an integer, not a tuple; a 1-d shape is written (n,)");
        return shape;
    }
    std::int64_t dimension() {
        if (peek() == '-') fail("negative dimension in 'shape'");
        const std::size_t start = pos_;
        std::int64_t v = 0;
        while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s_[pos_] - '0', &v))
                fail("a dimension in 'shape' does not fit in 64 bits");
            ++pos_;
        }
        if (pos_ == start || (pos_ < s_.size() && (s_[pos_] == '.' || s_[pos_] == 'e' ||
                                                   std::isalpha(static_cast<unsigned char>(s_[pos_])))))
            fail("dimensions in 'shape' must be non-negative integers");
        return v;
    }

    std::string_view s_;
    const std::string& file_;
    std::size_t pos_ = 0;
};

// ---- dtypes ----------------------------------------------------------------------------

struct StoredType {
    DType dtype;           // what the array becomes in memory
    std::size_t itemsize;  // bytes per element in the file
    bool big_endian;
};

StoredType stored_type(const std::string& descr, const std::string& file, bool u2_as_bfloat16) {
    auto bad = [&](const std::string& why) -> InputError {
        return InputError::in_file(file, fmt::format("dtype '{}' is not supported: {}", descr, why));
    };
    if (descr == "bfloat16") return {DType::bf16, 2, false}; // written by hand by some tools
    if (descr.size() < 2) throw bad("expected a float dtype such as '<f8'");
    const char order = descr[0];
    const std::string_view kind = std::string_view(descr).substr(1);
    const bool big = order == '>';
    if (order != '<' && order != '>' && order != '|' && order != '=')
        throw bad("expected a float dtype such as '<f8'");
    if (kind == "f8") return {DType::f64, 8, big};
    if (kind == "f4") return {DType::f32, 4, big};
    if (kind == "f2") return {DType::f16, 2, big};
    // ml_dtypes' bfloat16 saved by np.save: two opaque bytes, the top half of a float32
    if (kind == "V2" && order != '>') return {DType::bf16, 2, false};
    if (kind == "u2" && u2_as_bfloat16) return {DType::bf16, 2, big};
    if (kind == "u2")
        throw bad("16-bit unsigned integers are read only as bfloat16 bit patterns, when asked: pass "
                  "--dtype bfloat16 if they are");
    switch (kind[0]) {
    case 'i': case 'u': case 'b':
        throw bad("integer and boolean arrays are not read; convert with "
                  "np.save(path, a.astype(np.float64))");
    case 'O': throw bad("object arrays (pickled Python objects) are never read");
    case 'c': throw bad("complex arrays are not supported; save the real part");
    case 'V': throw bad("structured or void dtypes are not supported (two-byte '<V2' is read as bfloat16)");
    default: throw bad("bnorm reads float16, bfloat16, float32 and float64 arrays");
    }
}

// std::byteswap is C++23; g++ 12 has the builtins.
inline std::uint16_t byteswap(std::uint16_t v) { return __builtin_bswap16(v); }
inline std::uint32_t byteswap(std::uint32_t v) { return __builtin_bswap32(v); }
inline std::uint64_t byteswap(std::uint64_t v) { return __builtin_bswap64(v); }

template <class U> U load_scalar(const std::byte* p, bool big_endian) {
    U u;
    std::memcpy(&u, p, sizeof u);
    if (big_endian) u = byteswap(u);
    return u;
}

/// Decodes element i of the file's data into the array's type (half types: their bits).
template <class T> T decode(const std::byte* data, std::int64_t i, const StoredType& st) {
    const std::byte* p = data + i * static_cast<std::int64_t>(st.itemsize);
    if constexpr (std::is_same_v<T, std::uint16_t>) return load_scalar<std::uint16_t>(p, st.big_endian);
    switch (st.itemsize) {
    case 4: return std::bit_cast<float>(load_scalar<std::uint32_t>(p, st.big_endian));
    default: return static_cast<T>(std::bit_cast<double>(load_scalar<std::uint64_t>(p, st.big_endian)));
    }
}

template <class T>
void decode_all(const std::byte* data, const StoredType& st, bool fortran, Array& out) {
    T* dst = reinterpret_cast<T*>(out.bytes());
    const std::int64_t n = out.size();
    if (!fortran) {
        if (!st.big_endian && st.itemsize == sizeof(T)) {
            std::memcpy(dst, data, out.nbytes());
            return;
        }
        for (std::int64_t i = 0; i < n; ++i) dst[i] = decode<T>(data, i, st);
        return;
    }
    // Fortran order: the first index varies fastest in the file. Walk the C-order
    // multi-index and keep the matching Fortran offset.
    const Shape& shape = out.shape();
    const std::size_t rank = shape.size();
    if (rank < 2 || n == 0) { // a 0-d or 1-d array reads the same in either order
        for (std::int64_t i = 0; i < n; ++i) dst[i] = decode<T>(data, i, st);
        return;
    }
    std::vector<std::int64_t> fstride(rank), idx(rank);
    fstride[0] = 1;
    for (std::size_t d = 1; d < rank; ++d) fstride[d] = fstride[d - 1] * shape[d - 1];
    std::int64_t f = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        dst[i] = decode<T>(data, f, st);
        for (std::size_t d = rank; d-- > 0;) { // increment the C-order index
            ++idx[d];
            f += fstride[d];
            if (idx[d] < shape[d]) break;
            f -= idx[d] * fstride[d];
            idx[d] = 0;
        }
    }
}

std::uint32_t read_le(std::span<const std::byte> b, std::size_t at, std::size_t n) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::to_integer<std::uint32_t>(b[at + i]) << (8 * i);
    return v;
}

[[noreturn]] void bad_magic(std::span<const std::byte> file, const std::string& name) {
    auto starts = [&](std::string_view p) {
        return file.size() >= p.size() && std::memcmp(file.data(), p.data(), p.size()) == 0;
    };
    std::string hint;
    if (starts("PK\x03\x04"))
        hint = " (it is a zip archive, probably an .npz: extract one array with np.load(f)[key] "
               "and np.save it)";
    else if (!file.empty()) {
        const char c = static_cast<char>(file[0]);
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == ' ')
            hint = " (it looks like text: name it .csv to read it as CSV)";
    }
    throw InputError::in_file(name, "not an NPY file: it does not start with \\x93NUMPY" + hint);
}

} // namespace

namespace {

/// Everything parse_npy checks, without touching the data.
struct Inspected {
    Header header;
    StoredType stored;
    std::size_t data_offset;
};

Inspected inspect(std::span<const std::byte> file, const std::string& name, bool u2_as_bfloat16) {
    if (file.size() < kMagic.size() || std::memcmp(file.data(), kMagic.data(), kMagic.size()) != 0) {
        if (file.size() < kMagic.size() && !file.empty() && static_cast<unsigned char>(file[0]) == 0x93)
            throw InputError::in_file(name, fmt::format("truncated NPY file: {} bytes, the magic "
                                                        "string alone has 6",
                                                        file.size()));
        if (file.empty()) throw InputError::in_file(name, "the file is empty (0 bytes)");
        bad_magic(file, name);
    }
    if (file.size() < kPrefixLen)
        throw InputError::in_file(name, "truncated NPY file: it ends inside the version bytes");
    const int major = std::to_integer<int>(file[6]), minor = std::to_integer<int>(file[7]);
    if (major < 1 || major > 3 || minor != 0)
        throw InputError::in_file(name, fmt::format("NPY version {}.{} is not supported "
                                                    "(1.0, 2.0 and 3.0 are)",
                                                    major, minor));
    const std::size_t len_bytes = major == 1 ? 2 : 4;
    if (file.size() < kPrefixLen + len_bytes)
        throw InputError::in_file(name, "truncated NPY file: it ends inside the header length");
    const std::size_t header_len = read_le(file, kPrefixLen, len_bytes);
    const std::size_t data_offset = kPrefixLen + len_bytes + header_len;
    if (header_len > kMaxHeaderLen)
        throw InputError::in_file(name, fmt::format("NPY header length {} is absurd (numpy "
                                                    "refuses headers over {} bytes)",
                                                    header_len, kMaxHeaderLen));
    if (data_offset > file.size())
        throw InputError::in_file(name, fmt::format("truncated NPY file: the header claims {} "
                                                    "bytes but the file has only {} after the "
                                                    "prefix",
                                                    header_len, file.size() - kPrefixLen - len_bytes));

    const std::string_view text(reinterpret_cast<const char*>(file.data()) + kPrefixLen + len_bytes,
                                header_len);
    for (char c : text)
        if (c == '\0') throw InputError::in_file(name, "bad NPY header: it contains a NUL byte");
    const Header h = HeaderParser(text, name).parse();
    const StoredType st = stored_type(h.descr, name, u2_as_bfloat16);

    const std::int64_t count = element_count(h.shape);
    std::int64_t expected_bytes = 0;
    if (count < 0)
        throw InputError::in_file(name, fmt::format("shape {} has more elements than fit in 64 bits",
                                                    shape_to_string(h.shape)));
    if (__builtin_mul_overflow(count, static_cast<std::int64_t>(st.itemsize), &expected_bytes))
        throw InputError::in_file(name, fmt::format("shape {} of '{}' needs more bytes than fit in 64 bits",
                                                    shape_to_string(h.shape), h.descr));
    const auto present = static_cast<std::int64_t>(file.size() - data_offset);
    if (present != expected_bytes)
        throw InputError::in_file(
            name, fmt::format("{}: shape {} of '{}' needs {} data bytes, the file has {}",
                              present < expected_bytes ? "truncated data" : "extra data after the array",
                              shape_to_string(h.shape), h.descr, expected_bytes, present));

    return {h, st, data_offset};
}

} // namespace

NpyLayout inspect_npy(std::span<const std::byte> file, const std::string& name, bool u2_as_bfloat16) {
    const Inspected in = inspect(file, name, u2_as_bfloat16);
    const bool native = !in.stored.big_endian && !in.header.fortran_order &&
                        in.stored.itemsize == dtype_size(in.stored.dtype) &&
                        in.data_offset % in.stored.itemsize == 0;
    return {in.stored.dtype, in.header.shape, native, in.data_offset};
}

Array parse_npy(std::span<const std::byte> file, const std::string& name, bool u2_as_bfloat16) {
    const Inspected in = inspect(file, name, u2_as_bfloat16);
    Array out(in.stored.dtype, in.header.shape);
    const std::byte* data = file.data() + in.data_offset;
    if (in.stored.itemsize == 2) {
        decode_all<std::uint16_t>(data, in.stored, in.header.fortran_order, out);
        return out;
    }
    dispatch(in.stored.dtype, [&](auto t) { decode_all<decltype(t)>(data, in.stored, in.header.fortran_order, out); });
    return out;
}

namespace {

/// The descr np.save writes: bfloat16 as ml_dtypes' arrays are saved, two opaque bytes.
const char* descr_of(DType t) {
    switch (t) {
    case DType::f32: return "<f4";
    case DType::f16: return "<f2";
    case DType::bf16: return "<V2";
    default: return "<f8";
    }
}

} // namespace

std::string npy_header(DType dtype, std::span<const std::int64_t> shape) {
    // numpy 1.24 format._write_array_header + _wrap_header, for fortran_order False.
    std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
                                   descr_of(dtype), shape_to_string(shape));
    if (!shape.empty()) dict.append(kGrowthAxisDigits - std::to_string(shape[0]).size(), ' ');

    const std::size_t hlen = dict.size() + 1; // + '\n'
    for (int version = 1; version <= 2; ++version) {
        const std::size_t len_bytes = version == 1 ? 2 : 4;
        const std::size_t padlen = kArrayAlign - ((kPrefixLen + len_bytes + hlen) % kArrayAlign);
        const std::size_t total = hlen + padlen;
        if (version == 1 && total > 0xffff) continue;
        std::string out(kMagic);
        out += static_cast<char>(version);
        out += '\0';
        for (std::size_t i = 0; i < len_bytes; ++i) out += static_cast<char>((total >> (8 * i)) & 0xff);
        out += dict;
        out.append(padlen, ' ');
        out += '\n';
        return out;
    }
    throw Error("NPY header too large"); // unreachable for any shape of a real array
}

} // namespace bnorm
