// bnorm gen: one folder per case class (inputs, case.json, and with --with-outputs the
// exact outputs), built in a temporary folder beside --out and renamed into place, so
// that a failed run leaves no half suite behind.
#include "commands.hpp"
#include "gen_case.hpp"
#include "norm_options.hpp"
#include "options.hpp"

#include "bnorm/batchnorm.hpp"
#include "bnorm/cases.hpp"
#include "bnorm/error.hpp"
#include "bnorm/family.hpp"
#include "bnorm/files.hpp"
#include "bnorm/half.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace bnorm::app {
namespace {

namespace fs = std::filesystem;

struct GenOptions {
    CommonOptions common; // --norm, --groups, --axis, --shape, --dtype, --threads
    std::string suite, seed, out, format = "npy";
    bool with_outputs = false;
};

/// The gen command line that writes the same suite: the options that choose the data,
/// not --out or --threads, so that case.json has the same bytes wherever it is written.
std::vector<std::string> reproducing_command(const GenOptions& o, const NormProblem& p) {
    std::vector<std::string> c{"bnorm", "gen", "--suite", o.suite, "--norm", o.common.norm};
    if (p.norm == Norm::group) c.insert(c.end(), {"--groups", std::to_string(p.groups)});
    c.insert(c.end(), {"--axis", std::to_string(p.axis), "--shape", o.common.shape, "--dtype", o.common.dtype,
                       "--seed", o.seed, "--format", o.format});
    if (o.with_outputs) c.push_back("--with-outputs");
    return c;
}

DType parse_dtype(const std::string& text) {
    if (text == "float64") return DType::f64;
    if (text == "float32") return DType::f32;
    if (text == "float16") return DType::f16;
    if (text == "bfloat16") return DType::bf16;
    throw UsageError(
        fmt::format("--dtype '{}' is not a dtype gen writes (valid: float64, float32, float16, bfloat16)", text));
}

std::uint64_t parse_seed(const std::string& text) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size())
        throw UsageError(fmt::format("--seed '{}' must be a decimal integer from 0 to 18446744073709551615", text));
    return v;
}

/// --out must name a new folder, or an empty one, in an existing folder: not the current
/// folder or a parent (rename(2) cannot replace them), nor a symbolic link (rename(2)
/// would replace the link, not the folder it points to).
void check_out(const std::string& out) {
    std::error_code ec;
    fs::path path = fs::path(out).lexically_normal();
    if (path.filename().empty() && path.has_parent_path()) path = path.parent_path(); // "out/" names out
    if (path.filename() == "." || path.filename() == "..")
        throw UsageError(fmt::format("--out {} names the current folder or a parent; name a new folder, like "
                                     "--out cases",
                                     out));
    if (fs::is_symlink(fs::symlink_status(path, ec)))
        throw UsageError(fmt::format("--out {} is a symbolic link; name the folder itself, or a new one", out));
    const fs::file_status st = fs::status(path, ec);
    if (fs::exists(st)) {
        if (!fs::is_directory(st)) throw UsageError(fmt::format("--out {} exists and is not a folder", out));
        if (!fs::is_empty(path, ec) || ec)
            throw UsageError(fmt::format("--out {} is a folder that is not empty; gen writes a new suite into a new "
                                         "or empty folder",
                                         out));
        return;
    }
    const fs::path parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    if (!fs::is_directory(parent, ec))
        throw UsageError(fmt::format("--out {}: the folder {} does not exist", out, parent.string()));
}

/// A temporary folder beside the target, removed with its contents unless committed.
class PendingFolder {
public:
    explicit PendingFolder(const std::string& target) : target_(fs::path(target).lexically_normal()) {
        if (target_.filename().empty()) target_ = target_.parent_path(); // "out/" names out
        const fs::path parent = target_.parent_path().empty() ? fs::path(".") : target_.parent_path();
        std::string templ = (parent / ("." + target_.filename().string() + ".tmp-XXXXXX")).string();
        if (!::mkdtemp(templ.data()))
            throw SystemError(fmt::format("--out {}: cannot create a temporary folder beside it: {}",
                                          target_.string(), std::strerror(errno)));
        temp_ = templ;
    }
    PendingFolder(const PendingFolder&) = delete;
    PendingFolder& operator=(const PendingFolder&) = delete;
    ~PendingFolder() {
        std::error_code ec;
        if (!temp_.empty()) fs::remove_all(temp_, ec);
    }
    const fs::path& path() const { return temp_; }
    const fs::path& target() const { return target_; }
    /// Renames the folder onto the target (which rename(2) replaces if it is an empty folder).
    void commit() {
        if (std::rename(temp_.c_str(), target_.c_str()) != 0)
            throw SystemError(fmt::format("--out {}: cannot rename the finished suite into place: {}",
                                          target_.string(), std::strerror(errno)));
        temp_.clear();
    }

private:
    fs::path target_, temp_;
};

/// The values (each exact in t) as an array of dtype t; half types hold bit patterns.
Array to_array(const std::vector<double>& values, DType t, const Shape& shape) {
    if (is_half(t)) return round_array(to_array(values, DType::f64, shape), t); // exact: values are in t
    Array a(t, shape);
    dispatch(t, [&](auto z) {
        using T = decltype(z);
        T* out = a.data<T>();
        for (std::size_t i = 0; i < values.size(); ++i) out[i] = static_cast<T>(values[i]); // exact: values are in T
    });
    return a;
}

void write(const fs::path& folder, const std::string& name, const Array& a, Format f, int threads) {
    PendingFile file = write_array((folder / file_name(name, f)).string(), a, threads);
    file.commit();
}

/// The dtype the library computes a case in: its own, or float64 for the half types,
/// whose values widen exactly (as the CLI computes them, docs/half.md).
DType engine_dtype(DType t) { return is_half(t) ? DType::f64 : t; }

/// An output computed in engine_dtype, rounded once to the dtype the CLI writes it in: the
/// case's, but for the half types' statistics and γ/β gradients (not `like_x`), float32.
Array output(const Array& a, DType case_dtype, bool like_x) {
    if (!is_half(case_dtype)) return a;
    return round_array(a, like_x ? case_dtype : DType::f32);
}

/// Inference mode's exact outputs (batch norm): y, dx, dγ, dβ with the running statistics.
void write_eval_outputs(const fs::path& folder, const GeneratedCase& c, const GenRequest& r, int threads) {
    const NormProblem& p = c.problem;
    const Layout l = collapse(p.shape, p.axis);
    const Shape channels{p.channels};
    const DType e = engine_dtype(r.dtype);
    const Array x = to_array(c.x, e, p.shape), gamma = to_array(c.gamma, e, channels);
    const Array beta = to_array(c.beta, e, channels), dy = to_array(c.dy, e, p.shape);
    const Array rm = to_array(c.running_mean, e, channels), rv = to_array(c.running_var, e, channels);
    Array y(e, p.shape), dx(e, p.shape), dgamma(e, channels), dbeta(e, channels);
    dispatch(e, [&](auto z) {
        using T = decltype(z);
        const RunningStats<T> running{rm.data<T>(), rv.data<T>()};
        bnorm::forward_eval<T>(x.data<T>(), gamma.data<T>(), beta.data<T>(), running, l, c.eps_value, y.data<T>(),
                               threads);
        bnorm::backward_eval<T>(x.data<T>(), gamma.data<T>(), dy.data<T>(), running, l, c.eps_value, dx.data<T>(),
                                dgamma.data<T>(), dbeta.data<T>(), threads);
    });
    write(folder, "y", output(y, r.dtype, true), r.format, threads);
    write(folder, "dx", output(dx, r.dtype, true), r.format, threads);
    write(folder, "dgamma", output(dgamma, r.dtype, false), r.format, threads);
    write(folder, "dbeta", output(dbeta, r.dtype, false), r.format, threads);
}

/// The exact outputs of a case, computed by the library in engine_dtype and written in
/// the CLI's output dtypes.
void write_outputs(const fs::path& folder, const GeneratedCase& c, const GenRequest& r, int threads) {
    const NormProblem& p = c.problem;
    const bool rms = p.norm == Norm::rms;
    if (c.eval) return write_eval_outputs(folder, c, r, threads);
    const DType e = engine_dtype(r.dtype);
    const Array x = to_array(c.x, e, p.shape), gamma = to_array(c.gamma, e, p.param_shape);
    const Array beta = to_array(c.beta, e, rms ? Shape{0} : p.param_shape);
    const Array dy = to_array(c.dy, e, p.shape);
    Array y(e, p.shape), mean(e, p.stat_shape), invstd(e, p.stat_shape);
    Array dx(e, p.shape), dgamma(e, p.param_shape), dbeta(e, p.param_shape);
    dispatch(e, [&](auto z) {
        using T = decltype(z);
        bnorm::forward<T>(x.data<T>(), gamma.data<T>(), rms ? nullptr : beta.data<T>(), p, c.eps_value,
                          y.data<T>(), rms ? nullptr : mean.data<T>(), invstd.data<T>(), threads);
        bnorm::backward<T>(x.data<T>(), gamma.data<T>(), dy.data<T>(), p, c.eps_value, dx.data<T>(),
                           dgamma.data<T>(), rms ? nullptr : dbeta.data<T>(), threads);
    });
    const std::pair<const char*, const Array*> all[] = {{"y", &y},   {"mean", &mean},     {"invstd", &invstd},
                                                        {"dx", &dx}, {"dgamma", &dgamma}, {"dbeta", &dbeta}};
    for (const auto& [name, a] : all) {
        const bool none = rms && (std::string(name) == "mean" || std::string(name) == "dbeta"); // rms has neither
        const bool like_x = a == &y || a == &dx;
        if (!none) write(folder, name, output(*a, r.dtype, like_x), r.format, threads);
    }
}

void write_case(const fs::path& folder, const GeneratedCase& c, const GenRequest& r, int threads) {
    fs::create_directory(folder);
    const NormProblem& p = c.problem;
    write(folder, "x", to_array(c.x, r.dtype, p.shape), r.format, threads);
    write(folder, "gamma", to_array(c.gamma, r.dtype, p.param_shape), r.format, threads);
    if (p.norm != Norm::rms) write(folder, "beta", to_array(c.beta, r.dtype, p.param_shape), r.format, threads);
    write(folder, "dy", to_array(c.dy, r.dtype, p.shape), r.format, threads);
    if (c.eval) {
        write(folder, "running_mean", to_array(c.running_mean, r.dtype, {p.channels}), r.format, threads);
        write(folder, "running_var", to_array(c.running_var, r.dtype, {p.channels}), r.format, threads);
    }
    if (r.with_outputs) write_outputs(folder, c, r, threads);
    const std::string text = case_json(c, r);
    PendingFile json((folder / "case.json").string());
    json.write(text.data(), text.size());
    json.commit();
}

void run_gen(const GenOptions& o) {
    GenRequest r;
    r.suite = parse_suite(o.suite);
    const NormChoice norm = parse_norm_choice(o.common);
    r.dtype = parse_dtype(o.common.dtype);
    r.seed = parse_seed(o.seed);
    if (o.format != "npy" && o.format != "csv")
        throw UsageError(fmt::format("--format '{}' is not a format (valid: npy, csv)", o.format));
    r.format = o.format == "npy" ? Format::npy : Format::csv;
    r.with_outputs = o.with_outputs;
    r.requested_shape = *parse_shape(o.common.shape);
    const int axis = o.common.axis.empty() ? default_axis_option(norm.norm) : parse_int("--axis", o.common.axis);
    const NormProblem requested = check_norm_problem(r.requested_shape, norm.norm, axis, norm.groups, "--shape");
    const int threads = thread_count(o.common);
    check_out(o.out);
    r.command = reproducing_command(o, requested);

    PendingFolder suite(o.out);
    try {
        for (const std::string& cls : case_classes(r.suite, requested.norm))
            write_case(suite.path() / cls, make_case(cls, requested, r.dtype, r.seed), r, threads);
    } catch (const SystemError& e) { // a failed write names the file where it was going, not the temporary folder's
        std::string what = e.what();
        const std::string temp = suite.path().string(), target = suite.target().string();
        for (std::size_t at = what.find(temp); at != std::string::npos; at = what.find(temp, at + target.size()))
            what.replace(at, temp.size(), target);
        throw SystemError(what);
    }
    suite.commit();
}

} // namespace

void setup_gen(CLI::App& app) {
    auto opts = std::make_shared<GenOptions>();
    CLI::App* cmd = app.add_subcommand("gen", "Write a suite of test cases (inputs, case.json, optionally the exact "
                                              "outputs), one folder per class: ordinary data or the hard cases that "
                                              "break kernels");
    cmd->add_option("--suite", opts->suite, "ordinary (normal data; batch: eval too) or hard (offset, constant, two, "
                                            "cauchy, dy_cancel, tiny_var, huge, tiny; batch: eval_offset too)")
        ->required();
    cmd->add_option("--norm", opts->common.norm, "batch, layer, rms, instance or group")->capture_default_str();
    cmd->add_option("--groups", opts->common.groups, "G of --norm group (required with it; divides C)");
    cmd->add_option("--axis", opts->common.axis, "The norm's axis, as forward takes it (default: the norm's)");
    cmd->add_option("--shape", opts->common.shape, "Shape of x, e.g. 8,3,5,7")->required();
    cmd->add_option("--dtype", opts->common.dtype, "float64, float32, float16 or bfloat16 (NPY '<f2', '<V2')")
        ->required();
    cmd->add_option("--seed", opts->seed, "Seed: the same seed gives the same bytes on any machine")->required();
    cmd->add_option("--out", opts->out, "A new (or empty) folder to write the suite into")->required();
    cmd->add_option("--format", opts->format, "npy or csv")->capture_default_str();
    cmd->add_flag("--with-outputs", opts->with_outputs, "Also write the exact outputs (y, mean, invstd, dx, dgamma, "
                                                        "dbeta), rounded once to the dtype (half types: y "
                                                        "and dx; the others float32)");
    cmd->add_option("--threads", opts->common.threads, "Threads for the exact outputs (default 0: all cores); "
                                                       "the files are the same for any number")
        ->capture_default_str();
    cmd->footer("Examples:\n"
                "  bnorm gen --suite hard --norm layer --shape 4,16,64 --dtype float32 --seed 1 --out cases\n"
                "  bnorm gen --suite hard --shape 8,3,5,5 --dtype float64 --seed 7 --out golden --with-outputs\n"
                "Each folder's case.json holds the forward, backward and compare command lines (run them in it).\n"
                "Exit codes: 0 success, 2 bad usage (nothing is written).");
    refuse_empty_values(*cmd);
    cmd->callback([opts] { run_gen(*opts); });
}

} // namespace bnorm::app
