// The NPY format (numpy's np.save / np.load), versions 1.0, 2.0 and 3.0.
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
#pragma once

#include "bnorm/array.hpp"

#include <span>
#include <string>

namespace bnorm {

/// Parses a whole .npy file held in memory. `name` is the file name used in messages.
/// Accepts: versions 1.0, 2.0, 3.0; descr '<f4', '<f8', '>f4', '>f8' (byte-swapped),
/// '<f2'/'>f2' (float16), '<V2'/'|V2' (ml_dtypes' bfloat16 as np.save writes it) and the
/// hand-written 'bfloat16', '<u2'/'>u2' as bfloat16 bit patterns when `u2_as_bfloat16`
/// (refused otherwise, saying how to ask); fortran_order True (transposed into C order);
/// keys in any order, either quote style. Ensures: a C-order array of the file's dtype
/// (float16/bfloat16: bit patterns, bnorm/half.hpp).
/// Throws InputError naming the file and the problem for anything else, and checks the
/// size the header implies against the bytes present before allocating.
Array parse_npy(std::span<const std::byte> file, const std::string& name, bool u2_as_bfloat16 = false);

/// What the header of a valid NPY file says (the same checks as parse_npy, data untouched).
struct NpyLayout {
    DType dtype;             ///< what the array is in memory (the file's dtype)
    Shape shape;
    bool native;             ///< little-endian C-order, aligned: the file's
                             ///< bytes are the array's bytes
    std::size_t data_offset; ///< where the data starts in the file
};
NpyLayout inspect_npy(std::span<const std::byte> file, const std::string& name, bool u2_as_bfloat16 = false);

/// The header np.save (numpy 1.24) writes for a C-order little-endian array (bfloat16:
/// descr '<V2', as ml_dtypes' arrays are saved):
/// magic, version, header length, dict, padding, so that the data starts at a multiple
/// of 64 bytes. Version 1.0 unless the header needs more than 65535 bytes.
std::string npy_header(DType dtype, std::span<const std::int64_t> shape);

} // namespace bnorm
