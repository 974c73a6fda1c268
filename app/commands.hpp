// The subcommands. Each file app/<name>.cpp defines setup_<name>, which registers the
// subcommand, its options and a callback that runs it (CLI11's subcom_in_files layout).
#pragma once

#include <CLI/CLI.hpp>

namespace bnorm::app {

void setup_forward(CLI::App& app);
void setup_backward(CLI::App& app);
/// gradcheck sets exit_code: 0 when every check passed, 1 when one failed.
void setup_gradcheck(CLI::App& app, int& exit_code);
/// compare sets exit_code: 0 when every candidate passed, 1 when one failed.
void setup_compare(CLI::App& app, int& exit_code);
/// gen writes a suite of test cases (exit 0, or an error).
void setup_gen(CLI::App& app);

} // namespace bnorm::app
