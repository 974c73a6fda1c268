// float16 and bfloat16: the storage types of half-precision files. bnorm never computes
// in them: their values widen exactly to double, the float64 engine runs, and each output
// is rounded once from double to the half type (never through float32, which would round
// twice and can give the wrong neighbour at a half-way point).
#pragma once

#include "bnorm/array.hpp"

#include <cstdint>

namespace bnorm {

/// The nearest float16 (IEEE binary16: 1 sign, 5 exponent, 10 fraction bits) to v, ties to
/// even, as its bit pattern: subnormals below 2^-14 (spacing 2^-24), ±inf from 65520 on (the
/// half-way point above 65504), a quiet NaN of v's sign for NaN.
std::uint16_t to_float16(double v);
/// The nearest bfloat16 (1 sign, 8 exponent, 7 fraction bits: the top half of a float32)
/// to v, ties to even, as its bit pattern; subnormals below 2^-126 (spacing 2^-133), ±inf
/// from (2 − 2^-8)·2^127 on, a quiet NaN of v's sign for NaN.
std::uint16_t to_bfloat16(double v);

/// The exact value of a float16 / bfloat16 bit pattern (every one is a double).
double from_float16(std::uint16_t bits);
double from_bfloat16(std::uint16_t bits);

/// True for the half types, whose arrays hold bit patterns (std::uint16_t).
constexpr bool is_half(DType t) { return t == DType::f16 || t == DType::bf16; }

/// The nearest value of t to v, ties to even, as a double (t any dtype; float32 from
/// double is one correct rounding too).
double round_to(DType t, double v);

/// `a` converted to float64, exactly (any dtype).
Array widen_to_f64(const Array& a);

/// A float64 array rounded once, element by element, to `t` (float16, bfloat16: bit
/// patterns; float32: static_cast, itself correctly rounded; float64: a copy).
Array round_array(const Array& a, DType t);

} // namespace bnorm
