// libFuzzer target: the CSV reader, as float64 and as float32. Any input must either parse
// or throw InputError; what parses must format (shortest round trip) and parse back to the
// same values, bit for bit (NaNs compare as NaN: their payload is not kept by text).
#include "bnorm/csv.hpp"
#include "bnorm/error.hpp"

#include <cmath>
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

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace bnorm;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    for (const DType dt : {DType::f64, DType::f32}) {
        Array a;
        try {
            a = parse_csv(text, dt, "fuzz.csv");
        } catch (const InputError&) {
            continue;
        }
        std::string out;
        format_csv(a, [&](std::string_view chunk) { out += chunk; });
        const Array b = parse_csv(out, dt, "again.csv");
        const bool same = dt == DType::f64 ? same_values<double>(a, b) : same_values<float>(a, b);
        if (!same) __builtin_trap();
    }
    return 0;
}
