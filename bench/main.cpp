// bnorm_bench: measures, in one process, the yardstick streams (a STREAM-like triad, a
// copy, both also with non-temporal stores, and a read-only sum), bnorm's forward and
// backward kernels, oneDNN's on the same buffers (when built with it), and bnorm's CSV
// reader and writer. Writes the measurements as JSON; bench/report.py derives GB/s and
// the percentages of the yardsticks and prints the table. scripts/bench.sh runs everything.
#include "bench.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {
namespace {

using json = nlohmann::ordered_json;

struct Options {
    bool quick = false;
    std::string cases_file = BNORM_BENCH_CASES; // bench/cases.json
    std::string out = "-";
    std::string csv_out;
    std::size_t triad_mib = 256;
    std::int64_t csv_rows = 1'000'000, csv_cols = 16;
};

/// What bench/cases.json asks for, with --quick applied.
struct Plan {
    std::vector<int> threads;
    std::vector<Case> cases;
    RepPolicy policy;
};

Plan load_plan(const Options& o) {
    std::ifstream in(o.cases_file);
    if (!in) throw std::runtime_error(o.cases_file + ": cannot open");
    const json j = json::parse(in);
    Plan p;
    p.threads = j.at("threads").get<std::vector<int>>();
    for (const auto& c : j.at("cases")) {
        if (o.quick && !c.at("quick").get<bool>()) continue;
        // every case's ops and this case's more, in kOps order (forward_running beside forward)
        std::vector<std::string> names = j.at("ops").get<std::vector<std::string>>();
        for (const auto& more : c.value("more_ops", json::array())) names.push_back(more.get<std::string>());
        std::vector<Op> ops;
        for (Op op : kOps)
            if (std::find(names.begin(), names.end(), op_name(op)) != names.end()) ops.push_back(op);
        for (const std::string& name : names)
            if (std::none_of(std::begin(kOps), std::end(kOps), [&](Op op) { return name == op_name(op); }))
                throw std::runtime_error(o.cases_file + ": unknown op \"" + name + "\"");
        p.cases.push_back({c.at("shape").get<bnorm::Shape>(), c.at("axis").get<int>(),
                           c.at("layout").get<std::string>(),
                           c.at("dtype") == "float64" ? bnorm::DType::f64 : bnorm::DType::f32,
                           c.value("data", std::string("normal")), std::move(ops), c.value("norm", std::string("batch")),
                           c.value("groups", std::int64_t(0))});
    }
    const json& r = j.at("repetitions").at(o.quick ? "quick" : "full");
    p.policy = {r.at("min_samples"), r.at("max_samples"), r.at("floor_samples"),
                r.at("min_seconds"), r.at("max_seconds"), r.at("min_sample_ms")};
    return p;
}

std::string shape_text(const bnorm::Shape& s) {
    std::string t;
    for (std::size_t i = 0; i < s.size(); ++i) t += (i ? "x" : "") + std::to_string(s[i]);
    return t;
}

json timing_fields(const Timing& t) {
    return {{"ms_min", t.ms_min},
            {"ms_median", t.ms_median},
            {"samples", t.samples},
            {"calls_per_sample", t.calls_per_sample},
            {"faults_per_call", t.faults_per_call}};
}

/// Collects the records and the notes (skipped peers), and reports progress on stderr.
class Results {
public:
    void add(json record, const std::string& progress) {
        std::fprintf(stderr, "  %-60s %10.3f ms\n", progress.c_str(), record["ms_min"].get<double>());
        records_.push_back(std::move(record));
    }
    void note(const std::string& text) {
        if (std::find(notes_.begin(), notes_.end(), text) == notes_.end()) {
            std::fprintf(stderr, "  note: %s\n", text.c_str());
            notes_.push_back(text);
        }
    }
    json document() const {
        const auto v = onednn::version();
        return {{"onednn", v ? json(*v) : json(nullptr)}, {"notes", notes_}, {"records", records_}};
    }

private:
    std::vector<json> records_;
    std::vector<std::string> notes_;
};

/// The yardstick streams run before and after the kernels (`when`); the report takes the
/// faster, as STREAM takes the best run, so that a disturbance during one does not lower
/// the bound.
void bench_triad(const Options& o, const Plan& p, const char* when, Results& results) {
    Triad triad(o.triad_mib << 20);
    for (int threads : p.threads) {
        for (Stream stream : kStreams) {
            const Timing t = triad.measure(stream, threads, p.policy);
            json r = {{"op", stream_name(stream)}, {"impl", "stream"}, {"threads", threads}, {"when", when},
                      {"bytes", triad.bytes_per_call(stream)}};
            r.update(timing_fields(t));
            results.add(r, std::string(stream_name(stream)) + " (" + std::to_string(stream_arrays(stream)) + " x " +
                               std::to_string(o.triad_mib) + " MiB) threads=" + std::to_string(threads) + " " + when);
        }
    }
}

template <class T> void bench_case(const Case& c, const Plan& p, Results& results) {
    Tensors<T> t(c);
    for (Op op : c.ops) {
        for (int threads : p.threads) {
            json base = {{"op", op_name(op)}, {"impl", nullptr}, {"shape", c.shape}, {"axis", c.axis},
                         {"dtype", bnorm::dtype_name(c.dtype)}, {"layout", c.layout}, {"data", c.data},
                         {"threads", threads}, {"tensor_bytes", t.x.bytes()}};
            if (c.norm != "batch") base["norm"] = c.norm, base["groups"] = c.groups;
            const std::string what = std::string(op_name(op)) + (c.norm == "batch" ? "" : " " + c.norm) + " " +
                                     shape_text(c.shape) + " " +
                                     bnorm::dtype_name(c.dtype) + " " + c.layout +
                                     (c.data == "normal" ? "" : " " + c.data) + " threads=" + std::to_string(threads);

            const Timing mine = measure([&] { run_op(op, t, threads); }, p.policy);
            json r = base;
            r["impl"] = "bnorm";
            r.update(timing_fields(mine));
            results.add(r, what + " bnorm");

            if (c.norm != "batch") { // (oneDNN 2.6 has no group norm; its layer norm is not wired here)
                results.note("oneDNN skipped on the family norms: bnorm_bench times its batch normalization only");
                continue;
            }
            const onednn::Result theirs = onednn::measure(op, c, t, threads, p.policy);
            if (theirs.timing) {
                r = base;
                r["impl"] = "onednn";
                r["implementation"] = theirs.implementation;
                r.update(timing_fields(*theirs.timing));
                results.add(r, what + " onednn");
            } else {
                results.note(theirs.skipped);
            }
        }
    }
}

void bench_csv(const Options& o, const Plan& p, Results& results) {
    CsvBench csv(o.csv_rows, o.csv_cols);
    if (!o.csv_out.empty()) csv.write_text(o.csv_out);
    const json base = {{"impl", "bnorm"}, {"shape", csv.shape()}, {"dtype", "float64"},
                       {"threads", 1}, {"bytes", csv.text_bytes()}};
    const std::string what = " " + shape_text(csv.shape()) + " float64 (" +
                             std::to_string(csv.text_bytes() >> 20) + " MiB of text)";
    json r = {{"op", "csv_format"}};
    r.update(base);
    r.update(timing_fields(csv.measure_format(p.policy)));
    results.add(r, "csv_format" + what);
    r = {{"op", "csv_parse"}};
    r.update(base);
    r.update(timing_fields(csv.measure_parse(p.policy)));
    results.add(r, "csv_parse" + what);
}

int run(const Options& o) {
    const Plan plan = load_plan(o);
    Results results;
    bench_triad(o, plan, "before", results);
    for (const Case& c : plan.cases)
        bnorm::dispatch(c.dtype, [&](auto zero) { bench_case<decltype(zero)>(c, plan, results); });
    bench_csv(o, plan, results);
    bench_triad(o, plan, "after", results);

    const std::string text = results.document().dump(1);
    if (o.out == "-") {
        std::cout << text << '\n';
    } else {
        std::ofstream f(o.out);
        f << text << '\n';
        if (!f.flush()) throw std::runtime_error(o.out + ": cannot write");
    }
    return 0;
}

} // namespace
} // namespace bench

int main(int argc, char** argv) {
    bench::Options o;
    CLI::App app{"Times bnorm's kernels against memory streams and oneDNN, and bnorm's CSV "
                 "reader and writer; writes JSON records (scripts/bench.sh prints the table)"};
    app.add_flag("--quick", o.quick, "Only the cases marked quick, with fewer repetitions");
    app.add_option("--cases", o.cases_file, "The cases to run")->capture_default_str();
    app.add_option("--out", o.out, "Where to write the JSON ('-': stdout)")->capture_default_str();
    app.add_option("--csv-out", o.csv_out, "Also write the benchmarked CSV text to this file");
    app.add_option("--triad-mib", o.triad_mib, "Size of each array of the yardstick streams, MiB")->capture_default_str();
    app.add_option("--csv-rows", o.csv_rows, "Rows of the CSV benchmark")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    try {
        return bench::run(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bnorm_bench: error: %s\n", e.what());
        return 1;
    }
}
