// The CLI's signal handlers, which remove the library's pending temporary files.
#include "signals.hpp"

#include "bnorm/files.hpp"

#include <csignal>

namespace bnorm::app {
namespace {

// Only async-signal-safe calls here (unlink inside remove_pending_files, signal, raise):
// the signal is blocked while its handler runs, so the re-raised one is delivered with
// the default action as soon as the handler returns.
extern "C" void remove_pending_files_and_reraise(int sig) {
    bnorm::remove_pending_files();
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

} // namespace

void install_signal_handlers() {
    static const bool installed = [] {
        // SIGBUS: an input file, memory-mapped, was truncated by another process.
        for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGBUS}) std::signal(sig, remove_pending_files_and_reraise);
        // A write past RLIMIT_FSIZE then fails with EFBIG instead of killing the process.
        std::signal(SIGXFSZ, SIG_IGN);
        return true;
    }();
    (void)installed;
}

} // namespace bnorm::app
