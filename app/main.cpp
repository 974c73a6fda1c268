// bnorm: batch normalization you can trust. main only registers the subcommands and
// maps errors to exit codes: 0 success, 1 a check failed, 2 bad usage or bad input.
#include "commands.hpp"

#include "bnorm/error.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <new>

int main(int argc, char** argv) {
    CLI::App app{"bnorm: exact batch normalization (forward, backward, gradcheck) on .npy and .csv files.\n"
                 "Exit codes: 0 success, 1 a check failed, 2 bad usage or bad input."};
    app.set_version_flag("--version", "bnorm " BNORM_VERSION);
    app.require_subcommand(1);
    app.footer("Examples:\n"
               "  bnorm forward  --x x.npy --gamma gamma.npy --beta beta.npy --y y.npy --mean mean.npy\n"
               "  bnorm backward --x x.npy --gamma gamma.npy --dy dy.npy --dx dx.npy --dgamma dgamma.npy\n"
               "  bnorm forward  --x x_nhwc.csv --shape 8,5,5,3 --axis -1 --y y.csv\n"
               "  bnorm gradcheck --x x.npy --gamma gamma.npy --dy dy.npy --dx my_dx.npy\n"
               "Run 'bnorm <subcommand> --help' for its options and more examples.");
    bnorm::app::setup_forward(app);
    bnorm::app::setup_backward(app);
    int exit_code = bnorm::kExitOk;
    bnorm::app::setup_gradcheck(app, exit_code);

    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) { // --help, --help-all, --version
        return app.exit(e);
    } catch (const CLI::Error& e) {
        fmt::print(stderr, "bnorm: error: {} (see bnorm --help)\n", e.what());
        return bnorm::kExitBadInput;
    } catch (const bnorm::Error& e) {
        fmt::print(stderr, "bnorm: error: {}\n", e.what());
        return e.exit_code();
    } catch (const std::bad_alloc&) {
        fmt::print(stderr, "bnorm: error: out of memory\n");
        return bnorm::kExitBadInput;
    }
    return exit_code;
}
