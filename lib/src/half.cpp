// float16 and bfloat16 from and to double, rounded once (bnorm/half.hpp).
#include "bnorm/half.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstring>

namespace bnorm {
namespace {

/// The nearest number with `frac` fraction bits and least normal exponent `emin` (largest
/// finite exponent `emax`) to v, ties to even, encoded as sign | exponent | fraction.
/// n = |v|·2^(frac − e) below is exact (a power-of-two scaling to a value under
/// 2^(frac+1)), so the only rounding is the explicit one, ties to even, of n to an integer.
std::uint16_t round_bits(double v, int frac, int emin, int emax, std::uint16_t quiet_nan) {
    const std::uint16_t sign = std::signbit(v) ? 0x8000 : 0;
    const auto inf_bits = std::uint16_t((emax - emin + 2) << frac); // the all-ones exponent
    if (std::isnan(v)) return sign | quiet_nan;
    const double a = std::fabs(v);
    if (a == 0) return sign;
    if (a >= std::ldexp(1.0, emax + 1)) return sign | inf_bits;
    const int e = std::max(std::ilogb(a), emin);        // the binade (subnormals: emin's)
    const double n = std::ldexp(a, frac - e);           // a in units of the spacing there
    double r = std::floor(n);
    const double rest = n - r;                          // exact: n has few integer bits
    if (rest > 0.5 || (rest == 0.5 && std::fmod(r, 2.0) != 0)) r += 1;
    const auto units = std::uint32_t(r);                // in [0, 2^(frac+1)]
    if (std::ilogb(a) < emin) return std::uint16_t(sign | units); // subnormal (2^frac: the least normal)
    // normal: the leading bit is the exponent's; a carry to 2^(frac+1) moves to the next
    // exponent, and past emax to the infinity pattern.
    return std::uint16_t(sign | ((std::uint32_t(e - emin + 1) << frac) + (units - (1u << frac))));
}

} // namespace

std::uint16_t to_float16(double v) { return round_bits(v, 10, -14, 15, 0x7e00); }
std::uint16_t to_bfloat16(double v) { return round_bits(v, 7, -126, 127, 0x7fc0); }

double from_float16(std::uint16_t bits) {
    const int exp = (bits >> 10) & 0x1f, mant = bits & 0x3ff;
    double v;
    if (exp == 0) v = std::ldexp(double(mant), -24); // zero, subnormal
    else if (exp == 31) v = mant ? NAN : INFINITY;
    else v = std::ldexp(double(mant | 0x400), exp - 25);
    return (bits & 0x8000) ? -v : v;
}

double from_bfloat16(std::uint16_t bits) { return std::bit_cast<float>(std::uint32_t(bits) << 16); }

double round_to(DType t, double v) {
    switch (t) {
    case DType::f16: return from_float16(to_float16(v));
    case DType::bf16: return from_bfloat16(to_bfloat16(v));
    case DType::f32: return static_cast<float>(v);
    default: return v;
    }
}

Array widen_to_f64(const Array& a) {
    Array out(DType::f64, a.shape());
    double* dst = out.data<double>();
    const std::int64_t n = a.size();
    switch (a.dtype()) {
    case DType::f16:
    case DType::bf16: {
        const auto* src = reinterpret_cast<const std::uint16_t*>(a.bytes());
        const bool f16 = a.dtype() == DType::f16;
        for (std::int64_t i = 0; i < n; ++i) dst[i] = f16 ? from_float16(src[i]) : from_bfloat16(src[i]);
        break;
    }
    case DType::f32:
        for (std::int64_t i = 0; i < n; ++i) dst[i] = a.data<float>()[i];
        break;
    case DType::f64:
        if (n) std::memcpy(dst, a.bytes(), a.nbytes());
        break;
    }
    return out;
}

Array round_array(const Array& a, DType t) {
    assert(a.dtype() == DType::f64);
    Array out(t, a.shape());
    const double* src = a.data<double>();
    const std::int64_t n = a.size();
    switch (t) {
    case DType::f16:
    case DType::bf16: {
        auto* dst = reinterpret_cast<std::uint16_t*>(out.bytes());
        const bool f16 = t == DType::f16;
        for (std::int64_t i = 0; i < n; ++i) dst[i] = f16 ? to_float16(src[i]) : to_bfloat16(src[i]);
        break;
    }
    case DType::f32:
        for (std::int64_t i = 0; i < n; ++i) out.data<float>()[i] = static_cast<float>(src[i]);
        break;
    case DType::f64:
        if (n) std::memcpy(out.bytes(), src, a.nbytes());
        break;
    }
    return out;
}

} // namespace bnorm
