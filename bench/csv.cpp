// CSV throughput: bnorm::format_csv and bnorm::parse_csv, in memory, on one thread.
#include "bench.hpp"

#include "bnorm/csv.hpp"

#include <fstream>
#include <stdexcept>

namespace bench {

CsvBench::CsvBench(std::int64_t rows, std::int64_t cols)
    : array_(bnorm::DType::f64, {rows, cols}) {
    fill_normal(array_.data<double>(), static_cast<std::size_t>(array_.size()), 5);
    bnorm::format_csv(array_, [&](std::string_view chunk) { text_.append(chunk); });
}

Timing CsvBench::measure_format(const RepPolicy& policy) {
    std::string out;
    out.reserve(text_.size()); // keeps its pages between calls: only formatting is timed
    return measure(
        [&] {
            out.clear();
            bnorm::format_csv(array_, [&](std::string_view chunk) { out.append(chunk); }, 1);
        },
        policy);
}

Timing CsvBench::measure_parse(const RepPolicy& policy) {
    // parse_csv returns a new array each time: its allocation is part of the cost.
    return measure([&] { bnorm::parse_csv(text_, bnorm::DType::f64, "bench.csv", 1); }, policy);
}

void CsvBench::write_text(const std::string& path) const {
    std::ofstream out(path, std::ios::binary);
    out.write(text_.data(), static_cast<std::streamsize>(text_.size()));
    if (!out.flush()) throw std::runtime_error(path + ": cannot write the CSV file");
}

} // namespace bench
