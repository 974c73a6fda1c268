// Replays every input in tests/fuzz/regressions/ (inputs that once crashed a fuzz target)
// through the readers: each must parse or be refused with an InputError, nothing else; and
// a CSV input, made into a text of several chunks (fuzz/csv_chunks.hpp), must read the
// same on one thread and on three (fuzz_csv_chunks' property).
#include "helpers.hpp"
#include "fuzz/csv_chunks.hpp"

#include "bnorm/csv.hpp"
#include "bnorm/error.hpp"

#include <filesystem>
#include <functional>

using namespace bnorm;

namespace {

int replay(const std::string& folder, const std::function<void(const std::string&)>& read) {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(folder)) {
        const std::string bytes = test::slurp(e.path().string());
        CAPTURE(e.path().string());
        try {
            read(bytes);
        } catch (const InputError&) {
        }
        ++n;
    }
    return n;
}

} // namespace

TEST_CASE("fuzz regressions: every saved input is read or refused cleanly") {
    const std::string root = test::data_dir() + "/../fuzz/regressions";
    const int npy = replay(root + "/npy", [](const std::string& b) {
        parse_npy(std::as_bytes(std::span(b.data(), b.size())), "r.npy");
    });
    const int csv64 = replay(root + "/csv", [](const std::string& b) { parse_csv(b, DType::f64, "r.csv"); });
    const int csv32 = replay(root + "/csv", [](const std::string& b) { parse_csv(b, DType::f32, "r.csv"); });
    const int chunks = replay(root + "/csv", [](const std::string& b) { CHECK(fuzz::same_on_threads(b, DType::f64)); });
    CHECK(npy >= 1);
    CHECK(csv64 >= 1);
    CHECK(csv32 == csv64);
    CHECK(chunks == csv64);
}
