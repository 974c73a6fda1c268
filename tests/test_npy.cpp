// NPY reader and writer against files written by numpy itself
// (scripts/make_npy_fixtures.py; every fixture holds v[i] = (i - 3)/4 in C order).
#include "helpers.hpp"

#include "bnorm/error.hpp"

#include <nlohmann/json.hpp>

#include <cstring>

using namespace bnorm;
using bnorm::test::data_dir;
using bnorm::test::slurp;

namespace {

std::span<const std::byte> as_bytes(const std::string& s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

std::string error_of(const std::string& bytes) {
    try {
        parse_npy(as_bytes(bytes), "f.npy");
    } catch (const InputError& e) {
        return e.what();
    }
    return "(no error)";
}

/// A little-endian '<f8' file with a header written by hand.
std::string npy_v1(std::string dict, std::size_t data_bytes) {
    std::string out("\x93NUMPY\x01\x00", 8);
    dict += '\n';
    out += static_cast<char>(dict.size() & 0xff);
    out += static_cast<char>(dict.size() >> 8);
    out += dict;
    out.append(data_bytes, '\0');
    return out;
}

} // namespace

TEST_CASE("NPY: every numpy fixture loads to the right shape, dtype and values") {
    const auto manifest = nlohmann::json::parse(slurp(data_dir() + "/npy/manifest.json"));
    REQUIRE(manifest.size() >= 30);
    for (const auto& entry : manifest) {
        const std::string file = entry["file"];
        CAPTURE(file);
        const Array a = test::load_npy(data_dir() + "/npy/" + file);
        CHECK(a.shape() == entry["shape"].get<Shape>());
        CHECK(std::string(dtype_name(a.dtype())) == entry["dtype"].get<std::string>());
        const std::vector<double> v = test::to_doubles(a);
        for (std::size_t i = 0; i < v.size(); ++i) {
            CAPTURE(i);
            REQUIRE(v[i] == (double(i) - 3) / 4);
        }
    }
}

TEST_CASE("NPY: bnorm writes byte for byte what np.save wrote") {
    const auto manifest = nlohmann::json::parse(slurp(data_dir() + "/npy/manifest.json"));
    int compared = 0;
    for (const auto& entry : manifest) {
        if (!entry["byte_identical"].get<bool>()) continue;
        const std::string file = entry["file"];
        CAPTURE(file);
        const std::string numpy_bytes = slurp(data_dir() + "/npy/" + file);
        const Array a = test::load_npy(data_dir() + "/npy/" + file);
        std::string ours = npy_header(a.dtype(), a.shape());
        CHECK(ours.size() % 64 == 0);
        ours.append(reinterpret_cast<const char*>(a.bytes()), a.nbytes());
        CHECK(ours == numpy_bytes);
        ++compared;
    }
    CHECK(compared >= 20);
}

TEST_CASE("NPY: malformed files are refused with the file name and the problem") {
    const std::string good = npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 48);
    REQUIRE(error_of(good) == "(no error)");

    struct Bad {
        std::string bytes;
        std::string expected_fragment;
    };
    const Bad cases[] = {
        {"", "empty"},
        {"\x93NUM", "truncated"},
        {"1.0,2.0\n3.0,4.0\n", "looks like text"},
        {std::string("PK\x03\x04rest", 8), "zip"},
        {std::string("\x93NUMPY\x04\x00", 8) + "xx", "version 4.0"},
        {std::string("\x93NUMPY\x01\x00\x50", 9), "header length"},
        {std::string("\x93NUMPY\x01\x00\xff\x00", 10) + "{}", "truncated"},
        {npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 40), "truncated data"},
        {npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 56), "extra data"},
        {npy_v1("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }", 48), "integer"},
        {npy_v1("{'descr': '|O', 'fortran_order': False, 'shape': (2, 3), }", 48), "object"},
        {npy_v1("{'descr': '<c16', 'fortran_order': False, 'shape': (2, 3), }", 96), "complex"},
        {npy_v1("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }", 16), "structured"},
        {npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (2, -3), }", 0), "negative"},
        {npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3.0), }", 0), "integers"},
        {npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (6), }", 48), "not a tuple"},
        {npy_v1("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", 48), "twice"},
        {npy_v1("{'descr': '<f8', 'shape': (6,), }", 48), "fortran_order"},
        {npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (6,), 'x': 1}", 48), "unexpected key"},
        {npy_v1("{'descr': '<f8', 'fortran_order': 0, 'shape': (6,), }", 48), "True or False"},
        {npy_v1("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", 0),
         "64 bits"},
        {npy_v1("['descr', '<f8']", 0), "dict"},
    };
    for (const Bad& b : cases) {
        const std::string msg = error_of(b.bytes);
        CAPTURE(b.expected_fragment);
        CAPTURE(msg);
        CHECK(msg.rfind("f.npy: ", 0) == 0);
        CHECK(msg.find(b.expected_fragment) != std::string::npos);
        CHECK(msg.find('\n') == std::string::npos);
    }
}

TEST_CASE("NPY: header variants older numpys and other writers produce are read") {
    // The same (2, 3) float64 array v[i] = (i - 3)/4, with differently written headers.
    std::string data;
    for (int i = 0; i < 6; ++i) {
        const double v = (i - 3) / 4.0;
        data.append(reinterpret_cast<const char*>(&v), 8);
    }
    auto file = [&](const std::string& dict, std::size_t align, bool newline) {
        std::string h = dict;
        const std::size_t prefix = 10, body = h.size() + (newline ? 1 : 0);
        const std::size_t pad = (align - (prefix + body) % align) % align;
        h.append(pad, ' ');
        if (newline) h += '\n';
        std::string out("\x93NUMPY\x01\x00", 8);
        out += static_cast<char>(h.size() & 0xff);
        out += static_cast<char>(h.size() >> 8);
        return out + h + data;
    };
    const std::string variants[] = {
        file("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 16, true),   // numpy < 1.9: 16
        file("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}", 64, false),    // no newline, no comma
        file("{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2, 3)}", 64, true), // double quotes
        file("{'shape': (2, 3), 'fortran_order': False, 'descr': '<f8'}", 64, true),     // other key order
        file("{'fortran_order':False,'shape':(2,3,),'descr':'<f8'}", 1, false),          // no spaces, no padding
    };
    for (const std::string& bytes : variants) {
        CAPTURE(bytes.substr(10, bytes.size() - 58));
        const Array a = parse_npy(as_bytes(bytes), "v.npy");
        CHECK(a.shape() == Shape{2, 3});
        CHECK(test::to_doubles(a) == std::vector<double>{-0.75, -0.5, -0.25, 0, 0.25, 0.5});
    }
}
