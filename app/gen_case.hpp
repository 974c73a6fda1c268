// case.json of bnorm gen: what a case is, what makes it hard, and the bnorm command lines
// (forward, backward, compare) that run it from inside its folder.
#pragma once

#include "bnorm/array.hpp"
#include "bnorm/cases.hpp"
#include "bnorm/files.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace bnorm::app {

/// What a gen run was asked for, as case.json reports it.
struct GenRequest {
    Suite suite = Suite::hard;
    Shape requested_shape;
    DType dtype = DType::f64;
    std::uint64_t seed = 0;
    Format format = Format::npy;
    bool with_outputs = false;
    std::vector<std::string> command; ///< the gen command line that reproduces the suite
};

/// The file name of tensor `name` ("x", "got_y") in the request's format ("x.npy").
std::string file_name(const std::string& name, Format f);

/// The names of the input tensors of a case (x, gamma, beta but for rms, dy) and of its
/// exact outputs (y, mean but for rms, invstd, dx, dgamma, dbeta but for rms).
std::vector<std::string> input_names(const GeneratedCase& c);
std::vector<std::string> output_names(const GeneratedCase& c);

/// case.json's text (pretty-printed, ending with a newline).
std::string case_json(const GeneratedCase& c, const GenRequest& r);

} // namespace bnorm::app
