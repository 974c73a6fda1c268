// The CLI's signal handlers: no temporary output file is left when a signal ends bnorm.
#pragma once

namespace bnorm::app {

/// Installs, once, handlers for SIGINT, SIGTERM, SIGHUP, SIGPIPE and SIGBUS that remove
/// the pending temporary files (bnorm::remove_pending_files) and re-raise the signal, so
/// that the process still dies by it; and ignores SIGXFSZ, so that a write past
/// RLIMIT_FSIZE fails with an error message instead of killing the process.
void install_signal_handlers();

} // namespace bnorm::app
