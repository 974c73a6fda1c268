// libFuzzer target: the CSV reader, as float64, float32, float16 and bfloat16. Any input
// must either parse or throw InputError; what parses must format (shortest round trip) and
// parse back to the same values, bit for bit (NaNs compare as NaN: their payload is not
// kept by text).
#include "bnorm/csv.hpp"
#include "bnorm/error.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace {

template <class T> bool same_values(const bnorm::Array& a, const bnorm::Array& b) {
    if (a.shape() != b.shape()) return false;
    const T *x = a.data<T>(), *y = b.data<T>();
    for (std::int64_t i = 0; i < a.size(); ++i) {
        if (std::isnan(x[i]) && std::isnan(y[i])) continue;
        if (std::memcmp(&x[i], &y[i], sizeof(T)) != 0) return false;
    }
    return true;
}

/// Half arrays hold bit patterns: equal bits, or NaN in both (exponent all ones, fraction
/// not zero: above 0x7c00 in float16, 0x7f80 in bfloat16, sign aside).
bool same_half(const bnorm::Array& a, const bnorm::Array& b, std::uint16_t inf_bits) {
    if (a.shape() != b.shape()) return false;
    for (std::int64_t i = 0; i < a.size(); ++i) {
        std::uint16_t x_i, y_i;
        std::memcpy(&x_i, a.bytes() + 2 * i, 2);
        std::memcpy(&y_i, b.bytes() + 2 * i, 2);
        const bool nan_x = (x_i & 0x7fff) > inf_bits, nan_y = (y_i & 0x7fff) > inf_bits;
        if (nan_x && nan_y) continue;
        if (x_i != y_i) return false;
    }
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace bnorm;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    for (const DType dt : {DType::f64, DType::f32, DType::f16, DType::bf16}) {
        Array a;
        try {
            a = parse_csv(text, dt, "fuzz.csv");
        } catch (const InputError&) {
            continue;
        }
        std::string out;
        format_csv(a, [&](std::string_view chunk) { out += chunk; });
        const Array b = parse_csv(out, dt, "again.csv");
        const bool same = dt == DType::f64   ? same_values<double>(a, b)
                          : dt == DType::f32 ? same_values<float>(a, b)
                          : same_half(a, b, dt == DType::f16 ? 0x7c00 : 0x7f80);
        if (!same) __builtin_trap();
    }
    return 0;
}
