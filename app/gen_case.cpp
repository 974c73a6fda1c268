// case.json: the case's description and its command lines (gen_case.hpp).
#include "gen_case.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace bnorm::app {
namespace {

using Json = nlohmann::ordered_json;
using Args = std::vector<std::string>;

std::string shape_option(const Shape& s) {
    std::string text;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i) text += ',';
        text += std::to_string(s[i]);
    }
    return text;
}

/// The problem's options, as forward, backward and compare take them; CSV inputs also
/// need x's shape and dtype.
Args problem_options(const GeneratedCase& c, const GenRequest& r) {
    const NormProblem& p = c.problem;
    Args a{"--norm", std::string(norm_name(p.norm))};
    if (p.norm == Norm::group) a.insert(a.end(), {"--groups", std::to_string(p.groups)});
    a.insert(a.end(), {"--axis", std::to_string(p.axis), "--eps", c.eps});
    if (c.eval) a.insert(a.end(), {"--mode", "eval"});
    if (r.format == Format::csv) a.insert(a.end(), {"--shape", shape_option(p.shape), "--dtype", dtype_name(r.dtype)});
    return a;
}

void add(Args& a, const std::string& option, const std::string& name, Format f) {
    a.push_back(option);
    a.push_back(file_name(name, f));
}

} // namespace

std::string file_name(const std::string& name, Format f) { return name + (f == Format::npy ? ".npy" : ".csv"); }

std::vector<std::string> input_names(const GeneratedCase& c) {
    if (c.problem.norm == Norm::rms) return {"x", "gamma", "dy"};
    if (c.eval) return {"x", "gamma", "beta", "dy", "running_mean", "running_var"};
    return {"x", "gamma", "beta", "dy"};
}

std::vector<std::string> output_names(const GeneratedCase& c) {
    if (c.problem.norm == Norm::rms) return {"y", "invstd", "dx", "dgamma"};
    if (c.eval) return {"y", "dx", "dgamma", "dbeta"}; // no batch statistics in inference
    return {"y", "mean", "invstd", "dx", "dgamma", "dbeta"};
}

std::string case_json(const GeneratedCase& c, const GenRequest& r) {
    const NormProblem& p = c.problem;
    const bool rms = p.norm == Norm::rms;
    const Format f = r.format;
    Json j;
    j["class"] = c.name;
    j["suite"] = r.suite == Suite::hard ? "hard" : "ordinary";
    j["hard_because"] = c.hard_because;
    j["norm"] = norm_name(p.norm);
    j["groups"] = p.norm == Norm::group ? Json(p.groups) : Json(nullptr);
    j["axis"] = p.axis;
    j["shape"] = p.shape;
    j["requested_shape"] = r.requested_shape;
    j["dtype"] = dtype_name(r.dtype);
    j["seed"] = r.seed;
    j["eps"] = c.eps;
    j["m"] = p.per_set;
    j["sets"] = p.sets;
    j["gamma_shape"] = p.param_shape;
    j["stat_shape"] = p.stat_shape;
    j["format"] = f == Format::npy ? "npy" : "csv";
    Json inputs = Json::object(), outputs = Json::object();
    for (const auto& n : input_names(c)) inputs[n] = file_name(n, f);
    if (r.with_outputs)
        for (const auto& n : output_names(c)) outputs[n] = file_name(n, f);
    j["inputs"] = inputs;
    j["outputs"] = outputs; // the exact outputs (--with-outputs), rounded once to dtype
    Args opts = problem_options(c, r);
    const auto running = [&](Args& a) {
        if (c.eval) add(a, "--running-mean", "running_mean", f), add(a, "--running-var", "running_var", f);
    };
    j["cli_options"] = opts;

    // The command lines, run from the case's folder: bnorm's own outputs as got_*, which
    // is where your kernel writes its own for compare.
    Args fwd{"bnorm", "forward", "--x", file_name("x", f)};
    add(fwd, "--gamma", "gamma", f);
    if (!rms) add(fwd, "--beta", "beta", f);
    running(fwd);
    fwd.insert(fwd.end(), opts.begin(), opts.end());
    add(fwd, "--y", "got_y", f);
    if (!rms && !c.eval) add(fwd, "--mean", "got_mean", f);
    if (!c.eval) add(fwd, "--invstd", "got_invstd", f);
    Args bwd{"bnorm", "backward", "--x", file_name("x", f)};
    add(bwd, "--gamma", "gamma", f);
    add(bwd, "--dy", "dy", f);
    running(bwd);
    bwd.insert(bwd.end(), opts.begin(), opts.end());
    add(bwd, "--dx", "got_dx", f);
    add(bwd, "--dgamma", "got_dgamma", f);
    if (!rms) add(bwd, "--dbeta", "got_dbeta", f);
    Args cmp{"bnorm", "compare", "--x", file_name("x", f)};
    add(cmp, "--gamma", "gamma", f);
    if (!rms) add(cmp, "--beta", "beta", f);
    add(cmp, "--dy", "dy", f);
    running(cmp);
    cmp.insert(cmp.end(), opts.begin(), opts.end());
    for (const auto& n : output_names(c)) add(cmp, "--" + n, "got_" + n, f);
    j["forward"] = fwd;
    j["backward"] = bwd;
    j["compare"] = cmp;
    j["generated_by"] = r.command;
    return j.dump(2) + "\n";
}

} // namespace bnorm::app
