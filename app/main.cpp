// bnorm: batch normalization you can trust. main only registers the subcommands and
// maps errors to exit codes: 0 success, 1 a check failed, 2 bad usage or bad input.
#include "commands.hpp"

#include "bnorm/error.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <new>

int main(int argc, char** argv) {
    CLI::App app{"bnorm: exact batch normalization (forward, backward) on .npy and .csv files.\n"
                 "Exit codes: 0 success, 1 a check failed, 2 bad usage or bad input."};
    app.set_version_flag("--version", "bnorm " BNORM_VERSION);
    app.require_subcommand(1);
    app.footer("Run 'bnorm <subcommand> --help' for its options and examples.");
    bnorm::app::setup_forward(app);
    bnorm::app::setup_backward(app);

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
    return bnorm::kExitOk;
}
