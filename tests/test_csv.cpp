// CSV reader and writer: accepted variants, refused inputs with line and column, and exact
// round trips.
#include "helpers.hpp"

#include "bnorm/csv.hpp"
#include "bnorm/error.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <random>

using namespace bnorm;

namespace {

std::vector<double> parse64(const std::string& text, Shape* shape = nullptr) {
    const Array a = parse_csv(text, DType::f64, "t.csv");
    if (shape) *shape = a.shape();
    return test::to_doubles(a);
}

std::string error_of(const std::string& text, DType dtype = DType::f64) {
    try {
        parse_csv(text, dtype, "t.csv");
    } catch (const InputError& e) {
        return e.what();
    }
    return "(no error)";
}

std::string format(const Array& a) {
    std::string out;
    format_csv(a, [&](std::string_view s) { out += s; });
    return out;
}

} // namespace

TEST_CASE("CSV: accepted variants read to the same numbers") {
    const std::vector<double> want{1.5, -2, 3e-3, 4};
    const char* variants[] = {
        "1.5,-2\n3e-3,4\n",          // plain
        "1.5,-2\n3e-3,4",            // no trailing newline
        "1.5,-2\r\n3e-3,4\r\n",      // CRLF
        "1.5,-2\r\n3e-3,4",          // CRLF, the last line without one
        "1.5,-2\r\n3e-3,4\r",        // the last line ended by CR alone
        "\xEF\xBB\xBF" "1.5,-2\n3e-3,4\n", // UTF-8 BOM
        "\n1.5,-2\n\n  \n3e-3,4\n\n",    // blank lines
        " 1.5 ,\t-2\n  3e-3,  4  \n", // spaces and tabs around fields
        "+1.5,-2\n+3e-3,+4\n",       // leading '+'
        "1.5,-2.0\n0.003,4.\n",      // other spellings
    };
    for (const char* v : variants) {
        CAPTURE(v);
        Shape shape;
        CHECK(parse64(v, &shape) == want);
        CHECK(shape == Shape{2, 2});
    }
}

TEST_CASE("CSV: nan and inf in any case, subnormals, underflow to signed zero") {
    const std::vector<double> v = parse64("nan,NaN,-inf,INF,Infinity,4.9e-324,-1e-400,2.2250738585072014e-308\n");
    REQUIRE(v.size() == 8);
    CHECK(std::isnan(v[0]));
    CHECK(std::isnan(v[1]));
    CHECK(v[2] == -INFINITY);
    CHECK(v[3] == INFINITY);
    CHECK(v[4] == INFINITY);
    CHECK(v[5] == std::numeric_limits<double>::denorm_min());
    CHECK(v[6] == 0.0);
    CHECK(std::signbit(v[6]));
    CHECK(v[7] == std::numeric_limits<double>::min());
}

TEST_CASE("CSV: float32 is parsed correctly rounded, not through double") {
    // 1.00000005960464477539062500001 is just above the midpoint between 1 and
    // 1 + 2^-23: correctly rounded to float it is 1 + 2^-23, but rounded first to
    // double it becomes the exact midpoint, which then rounds to even (1.0).
    const Array a = parse_csv("1.00000005960464477539062500001\n", DType::f32, "t.csv");
    CHECK(a.data<float>()[0] == 1.0f + 0x1p-23f);
    CHECK(static_cast<float>(1.00000005960464477539062500001) == 1.0f); // the double-rounding trap
}

TEST_CASE("CSV: refused inputs name file, line and column") {
    struct Bad {
        std::string text;
        std::string where; // "t.csv:L:C: "
        std::string fragment;
    };
    const Bad cases[] = {
        {"1,2\n3\n", "t.csv:2:2: ", "1 value, expected 2"},
        {"1,2\n3,4,5\n", "t.csv:2:5: ", "more than 2"},
        {"1,2\n3,2.5x\n", "t.csv:2:3: ", "'2.5x' is not a number"},
        {"1;5,2;5\n", "t.csv:1:1: ", "';'"},
        {"1.5D+00\n", "t.csv:1:1: ", "not a number"},
        {"1,,2\n", "t.csv:1:3: ", "empty field"},
        {"1,2,\n", "t.csv:1:5: ", "trailing"},
        {"a,b\n1,2\n", "t.csv:1:1: ", "header"},
        {"1,2\n\n3,1e999\n", "t.csv:3:3: ", "overflows float64"},
        {"1e39\n", "t.csv:1:1: ", "overflows float32"},
        {std::string("1,2\n3,\0", 7), "t.csv:2:3: ", "NUL"},
        {std::string("1,2\n3\n4,\0", 9), "t.csv:3:3: ", "NUL"}, // a NUL, not the error before it
        {"1,2\r3,4\n", "t.csv:1:3: ", "carriage return inside a line"},
        {"1,2\n3,4,\n", "t.csv:2:5: ", "more than 2"},
        {"1,2\n3,4 5\n", "t.csv:2:3: ", "'4 5' is not a number"},
        {std::string("\xFF\xFE" "1\0,\0" "2\0", 8), "t.csv:1:1: ", "UTF-16"},
        {std::string("1\0,\0" "2\0", 6), "t.csv:1:1: ", "UTF-16"},
        {"+-1\n", "t.csv:1:1: ", "not a number"},
        {"0x10\n", "t.csv:1:1: ", "not a number"},
        {"1 2\n", "t.csv:1:1: ", "not a number"},
    };
    for (const Bad& b : cases) {
        const std::string msg = error_of(b.text, b.fragment == "overflows float32" ? DType::f32 : DType::f64);
        CAPTURE(b.text);
        CAPTURE(msg);
        CHECK(msg.rfind(b.where, 0) == 0);
        CHECK(msg.find(b.fragment) != std::string::npos);
        CHECK(msg.find('\n') == std::string::npos);
    }
    CHECK(error_of("") == "t.csv: the CSV file has no numbers (it is empty or blank)");
    CHECK(error_of("\n \r\n") == "t.csv: the CSV file has no numbers (it is empty or blank)");
}

TEST_CASE("CSV: written numbers are the shortest text that reads back to the same value") {
    Array a(DType::f64, {2, 3});
    double* p = a.data<double>();
    p[0] = 0.1; p[1] = 1e-5; p[2] = -0.0; p[3] = 1e21; p[4] = 5e-324; p[5] = 123456.789;
    CHECK(format(a) == "0.1,1e-05,-0\n1e+21,5e-324,123456.789\n");

    Array f(DType::f32, {3});
    f.data<float>()[0] = 0.1f; // 0.100000001490116... as a double, "0.1" as a float
    f.data<float>()[1] = 16777216.0f;
    f.data<float>()[2] = 1e-45f;
    CHECK(format(f) == "0.1\n16777216\n1e-45\n");
}

TEST_CASE("CSV: random bit patterns survive a write and a read exactly") {
    std::mt19937_64 rng(20261124);
    for (DType dt : {DType::f32, DType::f64}) {
        Array a(dt, {50, 40});
        dispatch(dt, [&](auto t) {
            using T = decltype(t);
            using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
            T* v = a.data<T>();
            for (std::int64_t i = 0; i < a.size(); ++i) {
                T x;
                do {
                    const U bits = static_cast<U>(rng());
                    std::memcpy(&x, &bits, sizeof x);
                } while (!std::isfinite(x));
                v[i] = x;
            }
        });
        const Array back = parse_csv(format(a), dt, "t.csv");
        REQUIRE(back.shape() == a.shape());
        CHECK(std::memcmp(back.bytes(), a.bytes(), a.nbytes()) == 0);
    }
}

TEST_CASE("CSV: the text is the same for any thread count, blocks cutting lines included") {
    std::mt19937_64 rng(5);
    std::normal_distribution<double> normal;
    for (const Shape& shape : {Shape{20011, 7}, Shape{150001}}) { // blocks of 2^16 values
        Array a(DType::f64, shape);
        for (std::int64_t i = 0; i < a.size(); ++i) a.data<double>()[i] = normal(rng);
        std::string one;
        format_csv(a, [&](std::string_view s) { one += s; }, 1);
        const Array back = parse_csv(one, DType::f64, "t.csv");
        CHECK(back.size() == a.size());
        CHECK(std::memcmp(back.bytes(), a.bytes(), a.nbytes()) == 0);
        CHECK(std::count(one.begin(), one.end(), '\n') == shape[0]);
        for (int threads : {2, 3}) {
            std::string many;
            format_csv(a, [&](std::string_view s) { many += s; }, threads);
            CHECK(many == one);
        }
    }
}

namespace {

/// A CSV text of `rows` rows of `cols` random values, written with printf's "%.17g" (not
/// bnorm's writer), with the oddities the reader accepts: a byte-order mark, blank lines
/// (empty, blanks, a lone CR) before and between rows, CRLF on some lines, blanks around
/// fields, and no line end after the last row. `values` gets the numbers, `line_of` each
/// row's physical line.
std::string odd_csv(std::int64_t rows, int cols, std::uint64_t seed, std::vector<double>& values,
                    std::vector<long long>& line_of) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    std::string text = "\xEF\xBB\xBF\n  \n";
    long long line = 3;
    char buf[64];
    for (std::int64_t r = 0; r < rows; ++r) {
        switch (rng() % 16) {
        case 0: text += "\n", ++line; break;
        case 1: text += " \t \n", ++line; break;
        case 2: text += "\r\n", ++line; break;
        default: break;
        }
        line_of.push_back(line);
        for (int c = 0; c < cols; ++c) {
            const double v = normal(rng) * std::ldexp(1.0, int(rng() % 40) - 20);
            values.push_back(v);
            std::snprintf(buf, sizeof buf, "%s%.17g", c == 0 ? "" : (rng() % 8 == 0 ? " , " : ","), v);
            text += buf;
        }
        if (r + 1 < rows) text += rng() % 4 == 0 ? "\r\n" : "\n", ++line;
    }
    return text;
}

} // namespace

TEST_CASE("CSV: parsed on any number of threads, the same exact values, chunks cutting anywhere") {
    for (const int cols : {1, 7}) {
        std::vector<double> want;
        std::vector<long long> line_of;
        const std::int64_t rows = cols == 1 ? 30011 : 9001; // 0.5 MB and 1.2 MB: up to 8 chunks of 64 KiB
        const std::string text = odd_csv(rows, cols, 11 + std::uint64_t(cols), want, line_of);
        for (const int threads : {1, 2, 3, 5, 8}) {
            CAPTURE(cols);
            CAPTURE(threads);
            const Array a = parse_csv(text, DType::f64, "t.csv", threads);
            CHECK(a.shape() == Shape{rows, cols});
            CHECK(test::to_doubles(a) == want);
        }
    }
}

TEST_CASE("CSV: the first failure in the file is the one reported, for any number of threads") {
    std::vector<double> values;
    std::vector<long long> line_of;
    const std::int64_t rows = 12000;
    const std::string good = odd_csv(rows, 5, 3, values, line_of); // 1.1 MB
    // The text of row r begins after the line end of the line before it.
    auto row_start = [&](std::int64_t r) {
        std::size_t pos = 0;
        for (long long l = 1; l < line_of[std::size_t(r)]; ++l) pos = good.find('\n', pos) + 1;
        return pos;
    };
    struct Fault {
        std::int64_t row;     // the row that is spoiled
        std::string replace;  // its first field becomes this (its text up to the first comma)
        std::string expected; // the message after "t.csv:L:C: "
        long long column;
    };
    const Fault faults[] = {
        {0, "x1", "'x1' is not a number: the first row looks like a header, and headers are not supported (delete "
              "that line)", 1},
        {1, "abc", "'abc' is not a number (a number must fill its whole field)", 1},
        {5000, "1e999", "'1e999' overflows float64", 1},
        {9000, "", "empty field (every field must hold a number)", 1},
        {11999, "2.5x", "'2.5x' is not a number (a number must fill its whole field)", 1},
    };
    auto spoiled = [&](std::string text, const Fault& f) {
        const std::size_t at = row_start(f.row);
        return text.replace(at, text.find(',', at) - at, f.replace);
    };
    for (std::size_t i = 0; i < std::size(faults); ++i) {
        // the fault alone, then with every later fault in the file too
        std::string one = spoiled(good, faults[i]), all = one;
        for (std::size_t j = i + 1; j < std::size(faults); ++j) all = spoiled(all, faults[j]);
        const std::string want = "t.csv:" + std::to_string(line_of[std::size_t(faults[i].row)]) + ":" +
                                 std::to_string(faults[i].column) + ": " + faults[i].expected;
        for (const int threads : {1, 2, 3, 8}) {
            CAPTURE(i);
            CAPTURE(threads);
            for (const std::string* text : {&one, &all}) {
                std::string msg = "(no error)";
                try {
                    parse_csv(*text, DType::f64, "t.csv", threads);
                } catch (const InputError& e) {
                    msg = e.what();
                }
                CHECK(msg == want);
            }
        }
    }
    // a ragged row far into the file: its line, and the first row's line in the message
    std::string ragged = good;
    const std::size_t at = row_start(10000);
    ragged.erase(at, ragged.find(',', at) + 1 - at);
    const std::size_t end = ragged.find('\n', at);
    const long long width = (long long)(end - at) - (ragged[end - 1] == '\r' ? 1 : 0);
    for (const int threads : {1, 2, 8}) {
        std::string msg;
        try {
            parse_csv(ragged, DType::f64, "t.csv", threads);
        } catch (const InputError& e) {
            msg = e.what();
        }
        CHECK(msg == "t.csv:" + std::to_string(line_of[10000]) + ":" + std::to_string(width + 1) +
                         ": this row has 4 values, expected 5 like line " + std::to_string(line_of[0]));
    }
}
