// The JSON report of bnorm compare, and its lines on stderr.
#pragma once

#include "problem.hpp"

#include "bnorm/judge.hpp"

#include <string>
#include <vector>

namespace bnorm::app {

/// One judged candidate: its option's name ("y", "dx", ...), its file, its dtype and the
/// dtype the output would have, its shape, and the verdict.
struct JudgedTensor {
    std::string name, path;
    DType dtype = DType::f64, output_dtype = DType::f64;
    Shape shape;
    JudgeVerdict verdict;
};

/// What the report says about the problem beyond x: the momentum and correction when a
/// running statistic was judged (momentum < 0: none).
struct CompareProblemNotes {
    double momentum = -1;
    int correction = 1;
};

/// The report as JSON text, indented by 2, ending with a newline: the verdict, the
/// problem, the criterion and each tensor's statistics (NaN and ±inf written as null).
std::string compare_report_json(const Problem& p, const NormProblem& np, const JudgeCriterion& c,
                                const CompareProblemNotes& notes,
                                const std::vector<JudgedTensor>& tensors);

/// One line per judged tensor and the overall verdict, on stderr.
void print_compare_summary(const JudgeCriterion& c, const std::vector<JudgedTensor>& tensors);

/// The criterion in words, as the report and the summary state it.
std::string criterion_text(const JudgeCriterion& c);

} // namespace bnorm::app
