// bnorm: batch normalization you can trust. main only registers the subcommands and
// maps errors to exit codes: 0 success, 1 a check failed, 2 bad usage or bad input.
#include "commands.hpp"

#include "bnorm/error.hpp"
#include "bnorm/version.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>

namespace {

/// The message as one printable line: control characters (C0, DEL and the C1 range
/// U+0080..U+009F, which can come from a file name, a file's content or an option value)
/// are written as escapes, so an error is always exactly one line and never drives the
/// terminal.
std::string one_line(const std::string& message) {
    std::string out;
    for (std::size_t i = 0; i < message.size(); ++i) {
        const auto u = static_cast<unsigned char>(message[i]);
        const auto next = i + 1 < message.size() ? static_cast<unsigned char>(message[i + 1]) : 0;
        if (u == '\n') out += "\\n";
        else if (u == '\r') out += "\\r";
        else if (u == '\t') out += "\\t";
        else if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", u);
        else if (u == 0xc2 && next >= 0x80 && next <= 0x9f) out += fmt::format("\\u{:04x}", next), ++i;
        else out += static_cast<char>(u);
    }
    return out;
}

int fail(const std::string& message, int code) {
    fmt::print(stderr, "bnorm: error: {}\n", one_line(message));
    return code;
}

} // namespace

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

    const auto named = [&](const CLI::App* sub) { return argc > 1 && sub->check_name(argv[1]); };
    if (argc > 1 && argv[1][0] != '-' && app.get_subcommands(named).empty())
        return fail(fmt::format("unknown subcommand '{}' (expected forward, backward or gradcheck; see "
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
