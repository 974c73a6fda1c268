// Two builds of the library in one process, call by call (scripts/ab_calls.sh builds them):
// each library is a shared object of its commit's libbnorm.a, opened with its own symbols
// (RTLD_LOCAL | RTLD_DEEPBIND, linked -Bsymbolic), and the calls alternate A, B, B, A, ...
// on the same arrays. Where the machine's speed moves by tens of percent from one minute
// to the next, two builds timed minutes apart compare two moments; alternating calls
// compare the builds. Prints each case's least time for A, B/A, and whether the outputs
// (y or dx, and dγ) have the same bits.
//
// Usage: ab_calls LIB_A LIB_B [--threads N] [--rounds N] [--case NAME]... [--rows N] [--data KIND]
#include "bnorm/batchnorm.hpp"
#include "bnorm/family.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace bnorm;

enum class Op { eval, forward, backward };

struct Case {
    const char* name;
    Op op;
    bool f64;
    std::vector<std::int64_t> shape;
    const char* norm; // nullptr: batch norm over axis 1
    std::int64_t groups;
};

// bench/cases.json's kernels, by name
const Case kCases[] = {
    {"eval-f32-rows", Op::eval, false, {65536, 256}, nullptr, 0},
    {"eval-f64-rows", Op::eval, true, {65536, 256}, nullptr, 0},
    {"eval-f32-nchw", Op::eval, false, {32, 64, 56, 56}, nullptr, 0},
    {"eval-f64-nchw", Op::eval, true, {32, 64, 56, 56}, nullptr, 0},
    {"eval-f32-nhwc", Op::eval, false, {100352, 64}, nullptr, 0}, // (32, 56, 56, 64) as rows
    {"fwd-f32-rows", Op::forward, false, {65536, 256}, nullptr, 0},
    {"fwd-f64-rows", Op::forward, true, {65536, 256}, nullptr, 0},
    {"fwd-f32-nchw", Op::forward, false, {32, 64, 56, 56}, nullptr, 0},
    {"fwd-f64-nchw", Op::forward, true, {32, 64, 56, 56}, nullptr, 0},
    {"fwd-f32-nhwc", Op::forward, false, {100352, 64}, nullptr, 0},
    {"bwd-f32-rows", Op::backward, false, {65536, 256}, nullptr, 0},
    {"bwd-f64-rows", Op::backward, true, {65536, 256}, nullptr, 0},
    {"bwd-f32-nchw", Op::backward, false, {32, 64, 56, 56}, nullptr, 0},
    {"bwd-f64-nchw", Op::backward, true, {32, 64, 56, 56}, nullptr, 0},
    {"bwd-f32-nhwc", Op::backward, false, {100352, 64}, nullptr, 0},
    {"bwd-f32-tiny", Op::backward, false, {64, 16}, nullptr, 0},
    {"layer-fwd-f32", Op::forward, false, {16384, 1024}, "layer", 0},
    {"layer-bwd-f32", Op::backward, false, {16384, 1024}, "layer", 0},
    {"rms-bwd-f32", Op::backward, false, {16384, 1024}, "rms", 0},
    {"group-fwd-f32", Op::forward, false, {32, 64, 56, 56}, "group", 32},
    {"group-bwd-f32", Op::backward, false, {32, 64, 56, 56}, "group", 32},
    {"instance-bwd-f32", Op::backward, false, {32, 64, 56, 56}, "instance", 0},
};

// The public entry points, by their mangled names (the same in every build)
const char* symbol(Op op, bool family, bool f64) {
    if (family)
        return op == Op::forward ? (f64 ? "_ZN5bnorm7forwardIdEEvPKT_S3_S3_RKNS_11NormProblemEdPS1_S7_S7_i"
                                        : "_ZN5bnorm7forwardIfEEvPKT_S3_S3_RKNS_11NormProblemEdPS1_S7_S7_i")
                                 : (f64 ? "_ZN5bnorm8backwardIdEEvPKT_S3_S3_RKNS_11NormProblemEdPS1_S7_S7_i"
                                        : "_ZN5bnorm8backwardIfEEvPKT_S3_S3_RKNS_11NormProblemEdPS1_S7_S7_i");
    switch (op) {
    case Op::eval:
        return f64 ? "_ZN5bnorm12forward_evalIdEEvPKT_S3_S3_NS_12RunningStatsIS1_EERKNS_6LayoutEdPS1_i"
                   : "_ZN5bnorm12forward_evalIfEEvPKT_S3_S3_NS_12RunningStatsIS1_EERKNS_6LayoutEdPS1_i";
    case Op::forward:
        return f64 ? "_ZN5bnorm7forwardIdEEvPKT_S3_S3_RKNS_6LayoutEdPS1_S7_S7_i"
                   : "_ZN5bnorm7forwardIfEEvPKT_S3_S3_RKNS_6LayoutEdPS1_S7_S7_i";
    case Op::backward:
        return f64 ? "_ZN5bnorm8backwardIdEEvPKT_S3_S3_RKNS_6LayoutEdPS1_S7_S7_i"
                   : "_ZN5bnorm8backwardIfEEvPKT_S3_S3_RKNS_6LayoutEdPS1_S7_S7_i";
    }
    return nullptr;
}

std::string fmt_time(double v, const char* unit) {
    char b[32];
    std::snprintf(b, sizeof b, "%9.3f %s", v, unit);
    return b;
}

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "ab_calls: %s\n", what.c_str());
    std::exit(2);
}

struct Options {
    int threads = 1, rounds = 10;
    std::int64_t rows = 0; // 0: the case's own first dimension
    std::string data = "normal";
};

template <class T> void run(const Case& k, void* const (&libs)[2], const Options& o) {
    std::vector<std::int64_t> shape = k.shape;
    if (o.rows > 0) shape[0] = o.rows;
    std::int64_t n = 1;
    for (std::int64_t s : shape) n *= s;
    const std::int64_t C = shape[1], outer = shape[0], inner = n / outer / C;
    std::mt19937_64 rng(1);
    std::normal_distribution<double> normal;
    const auto count = static_cast<std::size_t>(n);
    std::vector<T> x(count), dy(count), out(count);
    for (std::size_t i = 0; i < x.size(); ++i) {
        x[i] = T(normal(rng)), dy[i] = T(normal(rng));
        if (o.data == "linear") dy[i] = T(0.5 + 2 * double(x[i]));
        if (o.data == "offset") x[i] = T(double(x[i]) + 5e4);
    }
    const bool family = k.norm != nullptr;
    NormProblem p{};
    std::int64_t params = C;
    if (family) {
        const std::string name = k.norm;
        const Norm norm = name == "layer" ? Norm::layer : name == "rms" ? Norm::rms : name == "group" ? Norm::group
                                                                                                   : Norm::instance;
        const bool rows = norm == Norm::layer || norm == Norm::rms;
        p = check_norm_problem(shape, norm, rows ? -1 : 1, k.groups, "x");
        params = p.params;
    }
    const bool rms = family && std::string(k.norm) == "rms";
    const auto m = static_cast<std::size_t>(params);
    std::vector<T> gamma(m, T(1.1)), beta(m, T(0.5)), rm(m, T(0.1)), rv(m, T(1.2)), dg(m), db(m);
    std::vector<T> mean(static_cast<std::size_t>(n / inner) + m), invstd(mean.size());
    const Layout l{outer, C, inner};
    double best[2] = {1e300, 1e300};
    std::vector<T> first[2]; // each side's outputs of its first call
    for (int r = 0; r < o.rounds; ++r)
        for (int i = 0; i < 2; ++i) {
            const int side = r % 2 == 0 ? i : 1 - i; // A B, B A, ...
            void* f = dlsym(libs[side], symbol(k.op, family, k.f64));
            if (!f) fail(std::string("no ") + symbol(k.op, family, k.f64));
            const auto t0 = std::chrono::steady_clock::now();
            using EvalFn = void (*)(const T*, const T*, const T*, RunningStats<T>, const Layout&, double, T*, int);
            using LayoutFn = void (*)(const T*, const T*, const T*, const Layout&, double, T*, T*, T*, int);
            using FamilyFn = void (*)(const T*, const T*, const T*, const NormProblem&, double, T*, T*, T*, int);
            const T* b = rms ? nullptr : beta.data();
            T* dbeta = rms ? nullptr : db.data();
            if (k.op == Op::eval)
                reinterpret_cast<EvalFn>(f)(x.data(), gamma.data(), beta.data(), {rm.data(), rv.data()}, l, 1e-5,
                                            out.data(), o.threads);
            else if (!family && k.op == Op::forward)
                reinterpret_cast<LayoutFn>(f)(x.data(), gamma.data(), beta.data(), l, 1e-5, out.data(), mean.data(),
                                              invstd.data(), o.threads);
            else if (!family)
                reinterpret_cast<LayoutFn>(f)(x.data(), gamma.data(), dy.data(), l, 1e-5, out.data(), dg.data(),
                                              db.data(), o.threads);
            else if (k.op == Op::forward)
                reinterpret_cast<FamilyFn>(f)(x.data(), gamma.data(), b, p, 1e-5, out.data(), mean.data(),
                                              invstd.data(), o.threads);
            else
                reinterpret_cast<FamilyFn>(f)(x.data(), gamma.data(), dy.data(), p, 1e-5, out.data(), dg.data(),
                                              dbeta, o.threads);
            const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            best[side] = std::min(best[side], ms);
            if (r == 0) {
                first[side] = out;
                first[side].insert(first[side].end(), dg.begin(), dg.end());
            }
        }
    const bool same = std::memcmp(first[0].data(), first[1].data(), first[0].size() * sizeof(T)) == 0;
    const auto shown = [](double ms) { return ms < 0.1 ? fmt_time(ms * 1000, "us") : fmt_time(ms, "ms"); };
    std::printf("%-18s %dT  A %s  B %s  B/A %.3f  %s\n", k.name, o.threads, shown(best[0]).c_str(),
                shown(best[1]).c_str(), best[1] / best[0], same ? "same bits" : "BITS DIFFER");
    std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) fail("usage: ab_calls LIB_A LIB_B [--threads N] [--rounds N] [--case NAME]... [--rows N] [--data KIND]");
    Options o;
    std::vector<const Case*> chosen;
    for (int i = 3; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) fail(a + " needs a value");
        const std::string v = argv[++i];
        if (a == "--threads") o.threads = std::atoi(v.c_str());
        else if (a == "--rounds") o.rounds = std::atoi(v.c_str());
        else if (a == "--rows") o.rows = std::atoll(v.c_str());
        else if (a == "--data") o.data = v;
        else if (a == "--case") {
            const Case* c = nullptr;
            for (const Case& k : kCases)
                if (v == k.name) c = &k;
            if (!c) {
                std::string names;
                for (const Case& k : kCases) names += std::string(" ") + k.name;
                fail("no case '" + v + "'; the cases:" + names);
            }
            chosen.push_back(c);
        } else
            fail("unknown option '" + a + "'");
    }
    if (o.threads < 1 || o.rounds < 1 || o.rows < 0) fail("--threads and --rounds must be positive, --rows not negative");
    if (o.data != "normal" && o.data != "linear" && o.data != "offset") fail("--data is normal, linear or offset");
    if (chosen.empty())
        for (const Case& k : kCases) chosen.push_back(&k);
    void* libs[2];
    for (int i = 0; i < 2; ++i)
        if (!(libs[i] = dlopen(argv[1 + i], RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND))) fail(dlerror());
    for (const Case* k : chosen)
        k->f64 ? run<double>(*k, libs, o) : run<float>(*k, libs, o);
}
