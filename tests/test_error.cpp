// printable(): every message bnorm builds is one line of valid UTF-8, whatever bytes the
// file names, file contents and option values quoted in it hold.
#include "bnorm/error.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>

using namespace bnorm;

namespace {

/// Whether `s` is well-formed UTF-8 (checked independently of printable, code point by
/// code point: the shortest form, no surrogate, at most U+10FFFF).
bool valid_utf8(const std::string& s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto u = static_cast<unsigned char>(s[i]);
        const std::size_t n = u < 0x80 ? 1 : (u >> 5) == 6 ? 2 : (u >> 4) == 14 ? 3 : (u >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        std::uint32_t cp = n == 1 ? u : u & (0x7f >> n);
        for (std::size_t k = 1; k < n; ++k) {
            const auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xc0) != 0x80) return false;
            cp = cp << 6 | (c & 0x3f);
        }
        const std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += n;
    }
    return true;
}

/// Whether valid UTF-8 `s` holds a space other than ' ' or an invisible character, by
/// its UTF-8 bytes: U+00A0 (C2 A0), U+2000..U+200F (E2 80 80..8F), U+2028..U+202F
/// (E2 80 A8..AF), U+205F, U+2060 (E2 81 9F, A0), U+3000 (E3 80 80), U+FEFF (EF BB BF).
bool has_unusual_space(const std::string& s) {
    const auto at = [&](std::size_t i) { return i < s.size() ? static_cast<unsigned char>(s[i]) : 0; };
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (at(i) == 0xc2 && at(i + 1) == 0xa0) return true;
        if (at(i) == 0xe2 && at(i + 1) == 0x80 && ((at(i + 2) >= 0x80 && at(i + 2) <= 0x8f) ||
                                                   (at(i + 2) >= 0xa8 && at(i + 2) <= 0xaf)))
            return true;
        if (at(i) == 0xe2 && at(i + 1) == 0x81 && (at(i + 2) == 0x9f || at(i + 2) == 0xa0)) return true;
        if (at(i) == 0xe3 && at(i + 1) == 0x80 && at(i + 2) == 0x80) return true;
        if (at(i) == 0xef && at(i + 1) == 0xbb && at(i + 2) == 0xbf) return true;
    }
    return false;
}

bool has_control(const std::string& s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto u = static_cast<unsigned char>(s[i]);
        if (u < 0x20 || u == 0x7f) return true;
        if (u == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) <= 0x9f) return true;
    }
    return false;
}

} // namespace

TEST_CASE("printable: valid UTF-8 passes unchanged") {
    for (const std::string s : {"", "x.npy", "caf\xc3\xa9.npy", "\xe2\x82\xac", "\xf0\x9f\x98\x80 ok",
                                "\xc2\xa1", "\xe2\x80\x90", "\xed\x9f\xbf", "\xee\x80\x80", "\xf4\x8f\xbf\xbf", "a\\b"})
        CHECK(printable(s) == s);
}

TEST_CASE("printable: control characters are escaped as before") {
    CHECK(printable("a\nb") == "a\\nb");
    CHECK(printable("a\rb\tc") == "a\\rb\\tc");
    CHECK(printable(std::string("\x00\x1b[31m\x7f", 7)) == "\\x00\\x1b[31m\\x7f");
    CHECK(printable("\xc2\x85\xc2\x9b") == "\\u0085\\u009b"); // C1: NEL, CSI
}

TEST_CASE("printable: spaces other than ' ' and invisible characters are escaped as \\uHHHH") {
    // a CSV field " 2" with a no-break space would read "' 2' is not a number"
    CHECK(printable("\xc2\xa0" "2") == "\\u00a02");            // U+00A0 no-break space
    CHECK(printable("a\xe2\x80\x83" "b") == "a\\u2003b");         // U+2003 em space
    CHECK(printable("\xe2\x80\x8b") == "\\u200b");             // U+200B zero-width space
    CHECK(printable("\xe2\x80\xaf\xe2\x81\xa0") == "\\u202f\\u2060"); // narrow no-break, word joiner
    CHECK(printable("\xe3\x80\x80") == "\\u3000");             // ideographic space
    CHECK(printable("\xef\xbb\xbf" "1") == "\\ufeff1");         // a byte-order mark
    CHECK(printable(printable("\xc2\xa0")) == printable("\xc2\xa0"));
}

TEST_CASE("printable: bytes outside valid UTF-8 are escaped one by one") {
    CHECK(printable("caf\xe9") == "caf\\xe9");                      // Latin-1 é
    CHECK(printable("caf\xe9.npy") == "caf\\xe9.npy");
    CHECK(printable("\x80x\xbf") == "\\x80x\\xbf");                // stray continuation bytes
    CHECK(printable("\xc0\xaf") == "\\xc0\\xaf");                  // overlong '/'
    CHECK(printable("\xc1\xbf") == "\\xc1\\xbf");                  // overlong U+007F
    CHECK(printable("\xe0\x80\xaf") == "\\xe0\\x80\\xaf");         // overlong, 3 bytes
    CHECK(printable("\xf0\x80\x80\xaf") == "\\xf0\\x80\\x80\\xaf"); // overlong, 4 bytes
    CHECK(printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");         // surrogate U+D800
    CHECK(printable("\xed\xbf\xbf") == "\\xed\\xbf\\xbf");         // surrogate U+DFFF
    CHECK(printable("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80"); // U+110000
    CHECK(printable("\xf5\xf8\xfe\xff") == "\\xf5\\xf8\\xfe\\xff"); // never in UTF-8
    CHECK(printable("\xe2\x82") == "\\xe2\\x82");                  // truncated at the end
    CHECK(printable("\xe2\x82z") == "\\xe2\\x82z");                // truncated in the middle
    CHECK(printable("\xf0\x9f\x98") == "\\xf0\\x9f\\x98");
    CHECK(printable("\xc3") == "\\xc3");
    CHECK(printable("\xc3\xa9\xe9\xc3\xa9") == "\xc3\xa9\\xe9\xc3\xa9"); // good, bad, good
}

TEST_CASE("printable: the result is valid UTF-8 without controls, and printable again") {
    // every 1- and 2-byte string, and 3-byte ones around the lead bytes with special ranges
    std::string s;
    auto check = [&] {
        const std::string p = printable(s);
        REQUIRE(valid_utf8(p));
        REQUIRE(!has_control(p));
        REQUIRE(printable(p) == p);
        if (valid_utf8(s) && !has_control(s) && !has_unusual_space(s)) REQUIRE(p == s);
    };
    for (int a = 0; a < 256; ++a) {
        s = std::string(1, char(a));
        check();
        for (int b = 0; b < 256; ++b) {
            s = {char(a), char(b)};
            check();
            if (a == 0xe0 || a == 0xed || a == 0xef || a == 0xf0 || a == 0xf4)
                for (int c : {0x00, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xff}) {
                    s = {char(a), char(b), char(c)};
                    check();
                    s += '\x80';
                    check();
                }
        }
    }
}

TEST_CASE("Error: what() is printable, so every message is one line of valid UTF-8") {
    CHECK(std::string(InputError::in_file("caf\xe9.npy", "no such file").what()) == "caf\\xe9.npy: no such file");
    CHECK(std::string(InputError::at("t.csv", 2, 3, "'4\xff' is not a number").what()) ==
          "t.csv:2:3: '4\\xff' is not a number");
    CHECK(std::string(UsageError("--axis '1\n'").what()) == "--axis '1\\n'");
    CHECK(std::string(InputError::in_file("caf\xc3\xa9.npy", "x").what()) == "caf\xc3\xa9.npy: x");
}
