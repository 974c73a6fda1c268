// Small helpers shared by the unit tests. Nothing here computes batch norm.
#pragma once

#include "bnorm/array.hpp"
#include "bnorm/half.hpp"
#include "bnorm/npy.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace bnorm::test {

inline std::string data_dir() { return BNORM_TEST_DATA; }

inline std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    REQUIRE_MESSAGE(f.good(), "cannot open " << path);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline Array load_npy(const std::string& path) {
    const std::string bytes = slurp(path);
    return parse_npy(std::as_bytes(std::span(bytes.data(), bytes.size())), path);
}

/// The array's values widened to double.
inline std::vector<double> to_doubles(const Array& a) {
    if (is_half(a.dtype())) { // bit patterns: decoded by the library (tests/test_half.cpp checks it)
        const Array w = widen_to_f64(a);
        return std::vector<double>(w.data<double>(), w.data<double>() + w.size());
    }
    return dispatch(a.dtype(), [&](auto t) {
        using T = decltype(t);
        const T* p = a.data<T>();
        return std::vector<double>(p, p + a.size());
    });
}

/// Normwise error in units of eps(T): max|got − want| / max|want| / eps.
/// NaN anywhere in got gives +inf. An all-zero `want` is judged absolutely.
template <class T>
double eps_error(std::span<const T> got, std::span<const double> want) {
    REQUIRE(got.size() == want.size());
    double num = 0, den = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(double(got[i]))) return INFINITY;
        num = std::max(num, std::abs(double(got[i]) - want[i]));
        den = std::max(den, std::abs(want[i]));
    }
    return (den > 0 ? num / den : num) / std::numeric_limits<T>::epsilon();
}

} // namespace bnorm::test
