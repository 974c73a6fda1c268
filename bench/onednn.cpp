// The oneDNN peer: dnnl::batch_normalization_forward (training, and inference from the
// running statistics) and _backward, on the same buffers as bnorm. Built only when CMake
// found oneDNN (BNORM_HAVE_DNNL).
#include "bench.hpp"

#ifdef BNORM_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <stdexcept>
#include <unordered_map>
#endif

namespace bench::onednn {

#ifndef BNORM_HAVE_DNNL

std::optional<std::string> version() { return std::nullopt; }

static Result unavailable() {
    return {std::nullopt, "",
            "oneDNN skipped: bnorm_bench was built without it (install libdnnl-dev, then rerun "
            "scripts/bench.sh)"};
}
Result measure(Op, const Case&, Tensors<float>&, int, const RepPolicy&) { return unavailable(); }
Result measure(Op, const Case&, Tensors<double>&, int, const RepPolicy&) { return unavailable(); }

#else

namespace {

using dnnl::memory;
using tag = memory::format_tag;

/// The descriptor of x. oneDNN's dims are logical (N, C, H, W); the tag says how they are
/// stored. (N, C) is described as the same bytes in (N, C, 1, 1) channels-last form: with
/// the plain `nc` tag oneDNN 2.6 falls back to its generic ncsp kernel, which walks a
/// spatial size of 1 and is about ten times slower than its JIT kernel on these bytes.
memory::desc data_desc(const Case& c) {
    const bnorm::Shape& s = c.shape;
    const auto f32 = memory::data_type::f32;
    if (c.layout == "nc") return {{s[0], s[1], 1, 1}, f32, tag::nhwc};
    if (c.layout == "nchw") return {{s[0], s[1], s[2], s[3]}, f32, tag::nchw};
    if (c.layout == "nhwc") return {{s[0], s[3], s[1], s[2]}, f32, tag::nhwc}; // stored N,H,W,C
    throw std::invalid_argument("oneDNN peer: unknown layout " + c.layout);
}

Result measure_f32(Op op, const Case& c, Tensors<float>& t, int threads, const RepPolicy& policy) {
    omp_set_num_threads(threads); // oneDNN runs on OpenMP; set before creating primitives
    const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    dnnl::stream stream(engine);

    const memory::desc md = data_desc(c);
    const memory::desc channel_md({t.layout.channels}, memory::data_type::f32, tag::a);
    const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    const auto eps = static_cast<float>(kEps);
    // The scratchpad is ours, allocated once, like every other buffer of the benchmark.
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);

    using fwd = dnnl::batch_normalization_forward;
    if (op == Op::eval_forward) { // y from the given mean and variance: the running statistics
        const fwd::primitive_desc pd(
            {dnnl::prop_kind::forward_inference, md, eps, flags | dnnl::normalization_flags::use_global_stats},
            attr, engine);
        Buffer<unsigned char> scratch(pd.scratchpad_desc().get_size());
        const std::unordered_map<int, memory> args{
            {DNNL_ARG_SRC, memory(md, engine, t.x.data())},
            {DNNL_ARG_DST, memory(md, engine, t.y_out)},
            {DNNL_ARG_SCALE, memory(channel_md, engine, t.gamma.data())},
            {DNNL_ARG_SHIFT, memory(channel_md, engine, t.beta.data())},
            {DNNL_ARG_MEAN, memory(channel_md, engine, t.running_mean.data())},
            {DNNL_ARG_VARIANCE, memory(channel_md, engine, t.running_var.data())},
            {DNNL_ARG_SCRATCHPAD, memory(pd.scratchpad_desc(), engine, scratch.data())},
        };
        const fwd inference(pd);
        const Timing timing = measure(
            [&] {
                inference.execute(stream, args);
                stream.wait();
            },
            policy);
        return {timing, pd.impl_info_str(), ""};
    }
    const fwd::primitive_desc fwd_pd({dnnl::prop_kind::forward_training, md, eps, flags}, attr, engine);
    Buffer<float> variance(static_cast<std::size_t>(t.layout.channels));
    Buffer<unsigned char> fwd_scratch(fwd_pd.scratchpad_desc().get_size());
    const std::unordered_map<int, memory> fwd_args{
        {DNNL_ARG_SRC, memory(md, engine, t.x.data())},
        {DNNL_ARG_DST, memory(md, engine, t.y_out)},
        {DNNL_ARG_SCALE, memory(channel_md, engine, t.gamma.data())},
        {DNNL_ARG_SHIFT, memory(channel_md, engine, t.beta.data())},
        {DNNL_ARG_MEAN, memory(channel_md, engine, t.mean.data())},
        {DNNL_ARG_VARIANCE, memory(channel_md, engine, variance.data())},
        {DNNL_ARG_SCRATCHPAD, memory(fwd_pd.scratchpad_desc(), engine, fwd_scratch.data())},
    };
    const fwd forward(fwd_pd);
    auto run_forward = [&] {
        forward.execute(stream, fwd_args);
        stream.wait();
    };
    if (op == Op::forward) return {measure(run_forward, policy), fwd_pd.impl_info_str(), ""};

    // The backward starts from the statistics saved by one forward pass; only it is timed.
    run_forward();
    using bwd = dnnl::batch_normalization_backward;
    const bwd::primitive_desc bwd_pd({dnnl::prop_kind::backward, md, md, eps, flags}, attr, engine,
                                     fwd_pd);
    Buffer<unsigned char> bwd_scratch(bwd_pd.scratchpad_desc().get_size());
    std::unordered_map<int, memory> bwd_args{
        {DNNL_ARG_DIFF_DST, memory(md, engine, t.dy.data())},
        {DNNL_ARG_DIFF_SRC, memory(md, engine, t.dx_out)},
        {DNNL_ARG_DIFF_SCALE, memory(channel_md, engine, t.dgamma.data())},
        {DNNL_ARG_DIFF_SHIFT, memory(channel_md, engine, t.dbeta.data())},
        {DNNL_ARG_SCRATCHPAD, memory(bwd_pd.scratchpad_desc(), engine, bwd_scratch.data())},
    };
    for (int arg : {DNNL_ARG_SRC, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_SCALE, DNNL_ARG_SHIFT})
        bwd_args.emplace(arg, fwd_args.at(arg)); // oneDNN 2.6 wants SHIFT here too
    const bwd backward(bwd_pd);
    const Timing timing = measure(
        [&] {
            backward.execute(stream, bwd_args);
            stream.wait();
        },
        policy);
    return {timing, bwd_pd.impl_info_str(), ""};
}

} // namespace

std::optional<std::string> version() {
    const dnnl_version_t* v = dnnl_version();
    return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

Result measure(Op op, const Case& c, Tensors<float>& t, int threads, const RepPolicy& policy) {
    if (op == Op::forward_running)
        return {std::nullopt, "", "oneDNN skipped on forward_running: it keeps no running statistics"};
    try {
        return measure_f32(op, c, t, threads, policy);
    } catch (const dnnl::error& e) {
        return {std::nullopt, "", std::string("oneDNN refused ") + op_name(op) + " on " + c.layout +
                                      ": " + e.what()};
    }
}

Result measure(Op, const Case&, Tensors<double>&, int, const RepPolicy&) {
    return {std::nullopt, "", "oneDNN " + *version() + " has no float64 batch normalization: skipped"};
}

#endif

} // namespace bench::onednn
