// The JSON report of bnorm gradcheck, and its summary on stderr.
#pragma once

#include "problem.hpp"

#include "bnorm/gradcheck.hpp"

#include <string>

namespace bnorm::app {

/// The report as JSON text, indented by 2, ending with a newline: the problem, the
/// method, the tolerances and the verdict on x, γ and β (NaN and ±inf written as null).
std::string gradcheck_report_json(const Problem& p, const GradcheckOptions& opt, const GradcheckReport& r);

/// One line per judged tensor, one for the directional checks in randomized mode, and
/// the overall verdict, on stderr: the JSON on stdout is for programs, these for people.
void print_gradcheck_summary(const GradcheckReport& r);

} // namespace bnorm::app
