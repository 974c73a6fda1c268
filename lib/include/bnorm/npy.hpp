// The NPY format (numpy's np.save / np.load), versions 1.0, 2.0 and 3.0.
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
#pragma once

#include "bnorm/array.hpp"

#include <span>
#include <string>

namespace bnorm {

/// Parses a whole .npy file held in memory. `name` is the file name used in messages.
/// Accepts: versions 1.0, 2.0, 3.0; descr '<f4', '<f8', '>f4', '>f8' (byte-swapped),
/// '<f2'/'>f2' (widened to float32); fortran_order True (transposed into C order);
/// keys in any order, either quote style. Ensures: a C-order array of float32/float64.
/// Throws InputError naming the file and the problem for anything else, and checks the
/// size the header implies against the bytes present before allocating.
Array parse_npy(std::span<const std::byte> file, const std::string& name);

/// What the header of a valid NPY file says (the same checks as parse_npy, data untouched).
struct NpyLayout {
    DType dtype;             ///< what the array is in memory (float16 reads as float32)
    Shape shape;
    bool native;             ///< little-endian C-order float32/float64, aligned: the file's
                             ///< bytes are the array's bytes
    std::size_t data_offset; ///< where the data starts in the file
};
NpyLayout inspect_npy(std::span<const std::byte> file, const std::string& name);

/// The header np.save (numpy 1.24) writes for a C-order little-endian array:
/// magic, version, header length, dict, padding, so that the data starts at a multiple
/// of 64 bytes. Version 1.0 unless the header needs more than 65535 bytes.
std::string npy_header(DType dtype, std::span<const std::int64_t> shape);

} // namespace bnorm
