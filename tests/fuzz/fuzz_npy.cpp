// libFuzzer target: the NPY reader. Any input must either parse or throw InputError; what
// parses must write back (npy_header + data) to a file that parses to the same bytes.
#include "bnorm/error.hpp"
#include "bnorm/npy.hpp"

#include <cstring>
#include <span>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace bnorm;
    Array a;
    try {
        a = parse_npy(std::as_bytes(std::span(data, size)), "fuzz.npy");
    } catch (const InputError&) {
        return 0;
    }
    std::string again = npy_header(a.dtype(), a.shape());
    again.append(reinterpret_cast<const char*>(a.bytes()), a.nbytes());
    const Array b = parse_npy(std::as_bytes(std::span(again.data(), again.size())), "again.npy");
    if (b.shape() != a.shape() || b.dtype() != a.dtype() || std::memcmp(a.bytes(), b.bytes(), a.nbytes()) != 0)
        __builtin_trap();
    return 0;
}
