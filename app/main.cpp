// bnorm: normalization layers you can trust. main only registers the subcommands and
// maps errors to exit codes: 0 success, 1 a check failed, 2 bad usage or bad input.
#include "commands.hpp"
#include "signals.hpp"

#include "bnorm/error.hpp"
#include "bnorm/version.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>

namespace {

/// Prints the message as one line of valid UTF-8: bnorm's own errors are already
/// printable(), CLI11's and the standard library's may quote an argument as it was given.
int fail(const std::string& message, int code) {
    fmt::print(stderr, "bnorm: error: {}\n", bnorm::printable(message));
    return code;
}

} // namespace

int main(int argc, char** argv) {
    bnorm::app::install_signal_handlers();
    CLI::App app{"bnorm: exact normalization layers (--norm batch, layer, rms, instance, group: forward, backward, "
                 "gradcheck, compare; gen writes test cases) on .npy and .csv files.\n"
                 "Exit codes: 0 success, 1 a check failed, 2 bad usage or bad input."};
    app.set_version_flag("--version", "bnorm " BNORM_VERSION);
    app.require_subcommand(1);
    app.footer("Examples:\n"
               "  bnorm forward  --x x.npy --gamma gamma.npy --beta beta.npy --y y.npy --mean mean.npy\n"
               "  bnorm backward --x x.npy --gamma gamma.npy --dy dy.npy --dx dx.npy --dgamma dgamma.npy\n"
               "  bnorm forward  --x x_nhwc.csv --shape 8,5,5,3 --axis -1 --y y.csv\n"
               "  bnorm forward  --norm layer --x x.npy --gamma gamma.npy --beta beta.npy --y y.npy\n"
               "  bnorm gradcheck --x x.npy --gamma gamma.npy --dy dy.npy --dx my_dx.npy\n"
               "  bnorm compare  --x x.npy --gamma gamma.npy --beta beta.npy --y my_y.npy\n"
               "  bnorm gen      --suite hard --norm layer --shape 4,16,64 --dtype float32 --seed 1 --out cases\n"
               "Run 'bnorm <subcommand> --help' for its options and more examples.");
    bnorm::app::setup_forward(app);
    bnorm::app::setup_backward(app);
    int exit_code = bnorm::kExitOk;
    bnorm::app::setup_gradcheck(app, exit_code);
    bnorm::app::setup_compare(app, exit_code);
    bnorm::app::setup_gen(app);

    const auto named = [&](const CLI::App* sub) { return argc > 1 && sub->check_name(argv[1]); };
    if (argc > 1 && argv[1][0] != '-' && app.get_subcommands(named).empty())
        return fail(fmt::format("unknown subcommand '{}' (expected forward, backward, gradcheck, compare or gen; see "
                                "bnorm --help)",
                                argv[1]),
                    bnorm::kExitBadInput);
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) { // --help, --help-all, --version
        return app.exit(e);
    } catch (const CLI::Error& e) {
        return fail(fmt::format("{} (see bnorm --help)", e.what()), bnorm::kExitBadInput);
    } catch (const bnorm::Error& e) {
        return fail(e.what(), e.exit_code());
    } catch (const std::bad_alloc&) {
        return fail("out of memory", bnorm::kExitBadInput);
    } catch (const std::exception& e) { // a bug: still one line and exit 2, never an abort
        return fail(fmt::format("internal error: {} (please report it)", e.what()), bnorm::kExitBadInput);
    }
    return exit_code;
}
