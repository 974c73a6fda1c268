// libFuzzer target: the CSV reader's parallel parse. The input "A|B" made into a text of
// several chunks, many lines of A with B among them (csv_chunks.hpp), must read the same on
// one thread and on three: the same array bit for bit, or the same message (the first
// failure in the file, with its line and column).
#include "csv_chunks.hpp"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    if (!bnorm::fuzz::same_on_threads(input, bnorm::DType::f64)) __builtin_trap();
    return 0;
}
