// Compile-time requirements of bnorm, checked in every translation unit that includes one
// of its headers (layout.hpp and error.hpp include this one, and every other header one of
// them).
#pragma once

// The results are exact (each output within about one ulp of the exact value, the same bits
// on any machine and any number of threads) only under IEEE semantics: -ffast-math (and
// -Ofast) lets the compiler reassociate sums, drop the error terms of the error-free
// transformations and assume no NaN or infinity, which breaks all of it. The library's
// target also requires -ffp-contract=off of the code compiled against it (bnorm::bnorm).
#if defined(__FAST_MATH__)
#error "bnorm requires IEEE floating-point semantics: do not compile with -ffast-math or -Ofast"
#endif
