// The property of the CSV reader's parallel parse that fuzz_csv_chunks checks and
// test_fuzz_regressions replays: a text cut into chunks for several threads reads exactly
// as on one thread (the same array, bit for bit, or the same message).
#pragma once

#include "bnorm/csv.hpp"
#include "bnorm/error.hpp"

#include <string>
#include <string_view>

namespace bnorm::fuzz {

/// A text long enough to be cut into chunks (the reader cuts one chunk per thread from
/// 64 KiB per chunk), from an input "A|B" (or just "A"): A once per line up to 160 KiB,
/// then B, then A once per line again up to 224 KiB. So B (where the fuzzer can put a
/// fault, after many good rows) falls into a later chunk than the first row.
inline std::string repeated_lines(std::string_view input) {
    const std::size_t bar = input.find('|');
    const std::string_view a = input.substr(0, bar), b = bar == std::string_view::npos ? "" : input.substr(bar + 1);
    std::string text;
    if (a.empty() && b.empty()) return text;
    auto fill = [&](std::size_t up_to) {
        while (!a.empty() && text.size() < up_to) text.append(a).push_back('\n');
    };
    fill(std::size_t(160) << 10);
    text.append(b).push_back('\n');
    fill(std::size_t(224) << 10);
    return text;
}

/// The array's bytes, or the message it was refused with.
inline std::string outcome(std::string_view text, DType dt, int threads) {
    try {
        const Array a = parse_csv(text, dt, "fuzz.csv", threads);
        return std::string(reinterpret_cast<const char*>(a.bytes()), a.nbytes());
    } catch (const InputError& e) {
        return std::string("refused: ") + e.what();
    }
}

/// Whether `input`, repeated (repeated_lines), reads the same on one thread and on three.
inline bool same_on_threads(std::string_view input, DType dt) {
    const std::string many = repeated_lines(input);
    return outcome(many, dt, 1) == outcome(many, dt, 3);
}

} // namespace bnorm::fuzz
