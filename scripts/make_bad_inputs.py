#!/usr/bin/python3
"""Writes a catalog of bad inputs for bnorm into OUT_DIR, for tests/cli/test_bad_inputs.py.

Usage (Debian's Python, which has numpy):

    /usr/bin/python3 scripts/make_bad_inputs.py OUT_DIR

Every case is one bnorm command line that must fail with the error contract of the
README ("Exit codes and errors"): exit code 2, one line of valid UTF-8 on stderr starting
with "bnorm: error: ", naming the file at fault, and no trace left in the folder.

OUT_DIR receives the input files of every case (flat, each bad file named after its
case, plus a few shared valid files: x.npy, x.csv, dy.npy, ...) and catalog.json, a list
of entries:

    {"name":    unique case name,
     "why":     one sentence: what is wrong with the input,
     "args":    the bnorm command line (without the executable), paths relative to OUT_DIR,
     "file":    the path the error must name, exactly as given in args (null for pure
                usage errors, and for paths holding control characters or bytes that are
                not UTF-8, which a one-line message must show escaped; "expect" then
                holds the escaped form or the printable part; such bytes are held as
                os.fsdecode does, surrogates U+DC80..U+DCFF, which json.dump writes as
                \\udcXX escapes and subprocess turns back into the bytes),
     "expect":  substrings the one-line error must contain (file:line:col for CSV, or a
                key phrase),
     "outputs": the output paths in args that do not exist before the run and must not
                exist after it}

Valid arrays are written with numpy (np.save); bad NPY files are valid files with
corrupted bytes, or headers written byte by byte. The catalog is deterministic.
"""
import io
import json
import os
import sys
import zipfile

import numpy as np

from bad_inputs_family import add_family_cases

MAGIC = b"\x93NUMPY"

# Shared valid inputs: x is (6, 3) float64, so C = 3 and m = 6.
N, C = 6, 3


def npy_bytes(a, version=None):
    """The bytes np.save writes for a (or write_array with an explicit version)."""
    buf = io.BytesIO()
    if version is None:
        np.save(buf, a, allow_pickle=True)
    else:
        np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


def raw_npy(header, data=b"", version=(1, 0), pad_to=None):
    """Hand-built NPY bytes: magic, version, header length, header text, data.

    header is the header text (normally a dict literal); it is padded with spaces and a
    final '\\n' so that the data starts at a multiple of 64, as numpy does (or to pad_to
    header bytes when given). The length field is 2 bytes for version 1.x, 4 otherwise."""
    hb = header.encode("latin1")
    lenbytes = 2 if version[0] == 1 else 4
    prefix = len(MAGIC) + 2 + lenbytes
    total = pad_to if pad_to is not None else -(-(prefix + len(hb) + 1) // 64) * 64 - prefix
    hb = hb + b" " * (total - len(hb) - 1) + b"\n"
    return (MAGIC + bytes(version) + len(hb).to_bytes(lenbytes, "little") + hb + data)


def header(descr="'<f8'", fortran="False", shape="(6, 3)", extra=""):
    return "{'descr': %s, 'fortran_order': %s, 'shape': %s, %s}" % (descr, fortran, shape, extra)


def csv_text(a):
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in a)


def build(out):
    os.makedirs(out, exist_ok=True)
    cases = []
    names = set()

    def put(name, data):
        """Writes bytes (or text, written as UTF-8 with no newline translation)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        return name

    def case(name, why, args, file, expect, outputs=()):
        assert name not in names, name
        names.add(name)
        for o in outputs:
            assert o in args, (name, o)
        if file is not None:
            assert file in args, (name, file)
        cases.append({"name": name, "why": why, "args": list(args), "file": file,
                      "expect": list(expect), "outputs": list(outputs)})

    def fwd(x, *more):
        return ["forward", "--x", x, "--y", "y.npy"] + list(more)

    def bwd(x, dy, *more):
        return ["backward", "--x", x, "--dy", dy, "--dx", "dx.npy"] + list(more)

    rng = np.random.default_rng(20240601)
    x = rng.standard_normal((N, C))
    dy = rng.standard_normal((N, C))
    put("x.npy", npy_bytes(x))
    put("x.csv", csv_text(x))
    put("dy.npy", npy_bytes(dy))
    put("dy32.npy", npy_bytes(dy.astype(np.float32)))
    good = npy_bytes(x)
    hlen = int.from_bytes(good[8:10], "little")
    good_data = good[10 + hlen:]

    # ------------------------------------------------------------------ NPY
    put("npy_wrong_magic.npy", b"\x93NUMPZ" + good[6:])
    case("npy_wrong_magic", "The file starts with \\x93NUMPZ instead of the NPY magic \\x93NUMPY.",
         fwd("npy_wrong_magic.npy"), "npy_wrong_magic.npy", ["not an NPY file"], ["y.npy"])

    put("npy_csv_text.npy", csv_text(x))
    case("npy_csv_text", "A CSV text file was given the .npy extension.",
         fwd("npy_csv_text.npy"), "npy_csv_text.npy", ["not an NPY file", "looks like text"],
         ["y.npy"])

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # what np.savez writes, with a fixed timestamp
        z.writestr(zipfile.ZipInfo("x.npy", date_time=(1980, 1, 1, 0, 0, 0)), npy_bytes(x))
    put("npy_npz_zip.npy", buf.getvalue())
    case("npy_npz_zip", "An .npz archive (a zip file) was renamed to .npy.",
         fwd("npy_npz_zip.npy"), "npy_npz_zip.npy", ["not an NPY file", "zip"], ["y.npy"])

    put("npy_empty.npy", b"")
    case("npy_empty", "The .npy file is empty (0 bytes).",
         fwd("npy_empty.npy"), "npy_empty.npy", ["empty"], ["y.npy"])

    put("npy_truncated_magic.npy", MAGIC[:4])
    case("npy_truncated_magic", "The file holds only the first 4 bytes of the NPY magic.",
         fwd("npy_truncated_magic.npy"), "npy_truncated_magic.npy", ["truncated"], ["y.npy"])

    put("npy_version_4_0.npy", good[:6] + b"\x04\x00" + good[8:])
    case("npy_version_4_0", "The NPY version bytes say 4.0, which does not exist.",
         fwd("npy_version_4_0.npy"), "npy_version_4_0.npy", ["version 4.0"], ["y.npy"])

    put("npy_version_1_1.npy", good[:6] + b"\x01\x01" + good[8:])
    case("npy_version_1_1", "The NPY version bytes say 1.1; only 1.0, 2.0 and 3.0 exist.",
         fwd("npy_version_1_1.npy"), "npy_version_1_1.npy", ["version 1.1"], ["y.npy"])

    put("npy_truncated_header_length.npy", good[:9])
    case("npy_truncated_header_length",
         "The file ends after the first byte of the 2-byte header length.",
         fwd("npy_truncated_header_length.npy"), "npy_truncated_header_length.npy",
         ["truncated"], ["y.npy"])

    put("npy_header_past_eof.npy", good[:8] + (1000).to_bytes(2, "little") + good[10:])
    case("npy_header_past_eof",
         "The header length field says 1000 bytes but the whole file is shorter.",
         fwd("npy_header_past_eof.npy"), "npy_header_past_eof.npy", ["truncated"], ["y.npy"])

    put("npy_header_absurd.npy", raw_npy(header(), good_data, version=(2, 0), pad_to=20032))
    case("npy_header_absurd",
         "A version 2.0 file whose (space-padded) header is 20032 bytes, over numpy's 10000 limit.",
         fwd("npy_header_absurd.npy"), "npy_header_absurd.npy", ["absurd"], ["y.npy"])

    put("npy_header_not_dict.npy", raw_npy("('<f8', False, (6, 3))", good_data))
    case("npy_header_not_dict", "The header is a tuple literal, not a dict.",
         fwd("npy_header_not_dict.npy"), "npy_header_not_dict.npy", ["bad NPY header"],
         ["y.npy"])

    put("npy_missing_key.npy", raw_npy("{'descr': '<f8', 'shape': (6, 3), }", good_data))
    case("npy_missing_key", "The header dict has no 'fortran_order' key.",
         fwd("npy_missing_key.npy"), "npy_missing_key.npy",
         ["bad NPY header", "fortran_order"], ["y.npy"])

    put("npy_duplicate_key.npy",
        raw_npy("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (6, 3), }",
                good_data))
    case("npy_duplicate_key", "The header dict has the key 'descr' twice, with different values.",
         fwd("npy_duplicate_key.npy"), "npy_duplicate_key.npy", ["bad NPY header", "descr"],
         ["y.npy"])

    put("npy_extra_key.npy", raw_npy(header(extra="'units': 'm', "), good_data))
    case("npy_extra_key", "The header dict has an unexpected key 'units'.",
         fwd("npy_extra_key.npy"), "npy_extra_key.npy", ["bad NPY header", "units"], ["y.npy"])

    put("npy_shape_not_tuple.npy", raw_npy(header(shape="(18)"), good_data))
    case("npy_shape_not_tuple", "The shape is written '(18)', which is the integer 18, not a tuple.",
         fwd("npy_shape_not_tuple.npy"), "npy_shape_not_tuple.npy",
         ["bad NPY header", "tuple"], ["y.npy"])

    put("npy_negative_dim.npy", raw_npy(header(shape="(-6, 3)"), good_data))
    case("npy_negative_dim", "The shape (-6, 3) has a negative dimension.",
         fwd("npy_negative_dim.npy"), "npy_negative_dim.npy", ["bad NPY header", "negative"],
         ["y.npy"])

    put("npy_rank_33.npy", raw_npy(header(shape="(6, 3" + ", 1" * 31 + ")"), good_data))
    case("npy_rank_33", "The shape has 33 axes, more than numpy before 2.0 reads or writes.",
         fwd("npy_rank_33.npy"), "npy_rank_33.npy", ["bad NPY header", "32 axes"], ["y.npy"])

    put("npy_nonint_dim.npy", raw_npy(header(shape="(6.0, 3)"), good_data))
    case("npy_nonint_dim", "The shape (6.0, 3) has a float dimension.",
         fwd("npy_nonint_dim.npy"), "npy_nonint_dim.npy", ["bad NPY header"], ["y.npy"])

    put("npy_count_overflow.npy",
        raw_npy(header(shape="(4294967296, 4294967296, 3)"), good_data))
    case("npy_count_overflow",
         "The shape (2**32, 2**32, 3) has more elements than fit in 64 bits.",
         fwd("npy_count_overflow.npy"), "npy_count_overflow.npy", ["64 bits"], ["y.npy"])

    put("npy_bytecount_overflow.npy",
        raw_npy(header(shape="(2305843009213693952, 3)"), good_data))
    case("npy_bytecount_overflow",
         "The shape (2**61, 3) has an element count that fits in 64 bits but a byte count that does not.",
         fwd("npy_bytecount_overflow.npy"), "npy_bytecount_overflow.npy", ["bytes", "64 bits"], ["y.npy"])

    put("npy_data_truncated.npy", good[:-1])
    case("npy_data_truncated", "The data of a (6, 3) float64 array is one byte short.",
         fwd("npy_data_truncated.npy"), "npy_data_truncated.npy", ["truncated", "144"],
         ["y.npy"])

    put("npy_trailing_bytes.npy", good + b"\x00" * 8)
    case("npy_trailing_bytes", "Eight extra bytes follow the data.",
         fwd("npy_trailing_bytes.npy"), "npy_trailing_bytes.npy", ["extra data"], ["y.npy"])

    for name, arr, why, expect in [
        ("npy_dtype_int32", np.arange(18, dtype="<i4").reshape(N, C),
         "The array is int32 ('<i4'), not float.", ["'<i4'"]),
        ("npy_dtype_bool", (x > 0), "The array is boolean ('|b1').", ["'|b1'"]),
        ("npy_dtype_object", x.astype(object),
         "The array has dtype object ('|O'): its data is a pickle.", ["'|O'"]),
        ("npy_dtype_complex", x.astype("<c16"), "The array is complex ('<c16').", ["'<c16'"]),
        ("npy_dtype_structured",
         np.zeros((N, C), dtype=[("a", "<f8"), ("b", "<f8")]),
         "The array has a structured dtype (two float64 fields).", ["structured"]),
        ("npy_dtype_unicode", np.array([["abc"] * C] * N, dtype="<U3"),
         "The array holds unicode strings ('<U3').", ["'<U3'"]),
    ]:
        put(name + ".npy", npy_bytes(arr))
        case(name, why, fwd(name + ".npy"), name + ".npy", ["dtype"] + expect, ["y.npy"])

    put("npy_fortran_not_bool.npy", raw_npy(header(fortran="0"), good_data))
    case("npy_fortran_not_bool", "fortran_order is the integer 0, not False or True.",
         fwd("npy_fortran_not_bool.npy"), "npy_fortran_not_bool.npy",
         ["bad NPY header", "fortran_order"], ["y.npy"])

    put("npy_descr_not_string.npy", raw_npy(header(descr="8"), good_data))
    case("npy_descr_not_string", "descr is the integer 8, not a dtype string.",
         fwd("npy_descr_not_string.npy"), "npy_descr_not_string.npy", ["descr"], ["y.npy"])

    put("npy_header_unterminated.npy",
        raw_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (6, 3), ", good_data))
    case("npy_header_unterminated", "The header dict has no closing brace.",
         fwd("npy_header_unterminated.npy"), "npy_header_unterminated.npy",
         ["bad NPY header"], ["y.npy"])

    put("npy_header_nul.npy", raw_npy(header(extra="'\x00': 1, "), good_data))
    case("npy_header_nul", "The header text holds a NUL byte.",
         fwd("npy_header_nul.npy"), "npy_header_nul.npy", ["bad NPY header", "NUL"], ["y.npy"])

    put("npy_header_length_4g.npy", MAGIC + b"\x02\x00" + b"\xff\xff\xff\xff" + b"{")
    case("npy_header_length_4g", "A version 2.0 header length field of 0xFFFFFFFF.",
         fwd("npy_header_length_4g.npy"), "npy_header_length_4g.npy", ["absurd"], ["y.npy"])

    for name, arr, why, expect in [
        ("npy_dtype_uint64", np.arange(18, dtype="<u8").reshape(N, C),
         "The array is uint64 ('<u8').", ["'<u8'"]),
        ("npy_dtype_longdouble", x.astype(np.longdouble),
         "The array is x87 long double ('<f16'), which bnorm does not read.", ["'<f16'"]),
        ("npy_dtype_datetime", np.zeros((N, C), dtype="<M8[ns]"),
         "The array is datetime64 ('<M8[ns]').", ["'<M8[ns]'"]),
        ("npy_dtype_void", np.zeros((N, C), dtype="|V8"),
         "The array is raw void bytes ('|V8').", ["'|V8'"]),
    ]:
        put(name + ".npy", npy_bytes(arr))
        case(name, why, fwd(name + ".npy"), name + ".npy", ["dtype"] + expect, ["y.npy"])

    # Header text with control characters: the message must show them escaped, on one line.
    put("npy_header_key_escape.npy", raw_npy(header(extra="'\x1b[31m': 1, "), good_data))
    case("npy_header_key_escape",
         "The header has an extra key holding an ESC character (an ANSI color code).",
         fwd("npy_header_key_escape.npy"), "npy_header_key_escape.npy",
         ["bad NPY header", "unexpected key"], ["y.npy"])
    put("npy_header_key_newline.npy", raw_npy(header(extra="'a\nb': 1, "), good_data))
    case("npy_header_key_newline", "The header has an extra key holding a newline.",
         fwd("npy_header_key_newline.npy"), "npy_header_key_newline.npy",
         ["bad NPY header", "unexpected key"], ["y.npy"])
    put("npy_descr_escape.npy", raw_npy(header(descr="'<f\x1b'"), good_data))
    case("npy_descr_escape", "The descr string '<f' ends with an ESC character.",
         fwd("npy_descr_escape.npy"), "npy_descr_escape.npy", ["dtype", "not supported"],
         ["y.npy"])

    # Header text that is not UTF-8: the message must show the byte escaped, so that it is
    # valid UTF-8 (a script reading stderr as text must not fail on it).
    put("npy_header_key_latin1.npy", raw_npy(header(extra="'caf\xe9': 1, "), good_data))
    case("npy_header_key_latin1",
         "The header has an extra key 'café' in Latin-1: byte 0xE9, not UTF-8.",
         fwd("npy_header_key_latin1.npy"), "npy_header_key_latin1.npy",
         ["bad NPY header", "unexpected key 'caf\\xe9'"], ["y.npy"])
    put("npy_descr_latin1.npy", raw_npy(header(descr="'<f\xe9'"), good_data))
    case("npy_descr_latin1", "The descr string '<f' ends with byte 0xE9, not UTF-8.",
         fwd("npy_descr_latin1.npy"), "npy_descr_latin1.npy", ["dtype '<f\\xe9'", "not supported"],
         ["y.npy"])

    # ------------------------------------------------------------------ CSV
    def csv_case(name, text, why, expect, extra=(), raw=None, out="y.npy"):
        fname = name + ".csv"
        put(fname, raw if raw is not None else text)
        case(name, why, ["forward", "--x", fname, "--y", out] + list(extra), fname, expect, [out])

    csv_case("csv_ragged", "1,2,3\n4,5,6\n7,8\n", "Line 3 has 2 values where the rows above have 3.",
             ["csv_ragged.csv:3:4", "2 values", "expected 3"])
    csv_case("csv_token_suffix", "1,2,3\n4,2.5x,6\n", "The token '2.5x' has trailing garbage.",
             ["csv_token_suffix.csv:2:3", "'2.5x'"])
    csv_case("csv_decimal_comma", "1,5;2,5\n3,5;4,5\n",
             "European CSV: decimal commas and ';' as the separator.",
             ["csv_decimal_comma.csv:1:3", "'5;2'"])
    csv_case("csv_fortran_d", "1.5D+00,2\n3,4\n", "'1.5D+00' is Fortran's double exponent notation.",
             ["csv_fortran_d.csv:1:1", "'1.5D+00'"])
    csv_case("csv_empty_field", "1,,2\n3,4,5\n", "Line 1 has an empty field between two commas.",
             ["csv_empty_field.csv:1:3", "empty field"])
    csv_case("csv_trailing_delimiter", "1,2,\n3,4,\n", "Every line ends with a trailing comma.",
             ["csv_trailing_delimiter.csv:1:5", "trailing"])
    csv_case("csv_header_row", "a,b\n1,2\n3,4\n", "The first line is a header row 'a,b'.",
             ["csv_header_row.csv:1:1", "header"])
    csv_case("csv_empty", "", "The CSV file is empty.", ["no numbers"])
    csv_case("csv_blank_only", "\n  \n\t\n\r\n", "The CSV file holds only blank lines.",
             ["no numbers"])
    csv_case("csv_nul_byte", "1,2\n3,\x004\n", "Line 2 holds a NUL byte.",
             ["csv_nul_byte.csv:2:3", "NUL"])
    csv_case("csv_utf16le_bom", None, "The file is UTF-16 LE text with a byte-order mark.",
             ["csv_utf16le_bom.csv:1:1", "UTF-16"], raw="1,2\n3,4\n".encode("utf-16"))
    csv_case("csv_utf16le_nobom", None, "The file is UTF-16 LE text without a byte-order mark.",
             ["csv_utf16le_nobom.csv:1:1", "UTF-16"], raw="1,2\n3,4\n".encode("utf-16-le"))
    csv_case("csv_overflow_f64", "1,2\n1e999,4\n", "'1e999' is above float64's range.",
             ["csv_overflow_f64.csv:2:1", "'1e999'", "overflows float64"])
    csv_case("csv_overflow_f32", "1,2\n3,1e39\n",
             "'1e39' is above float32's range, and the CSV is read as float32.",
             ["csv_overflow_f32.csv:2:3", "'1e39'", "overflows float32"],
             extra=["--dtype", "float32"])
    csv_case("csv_cr_only", "1,2\r3,4\r5,6\r",
             "Classic Mac line endings: lines end with CR alone.",
             ["csv_cr_only.csv:1:3", "carriage return"])
    csv_case("csv_escape_char", "1,2\n3,4\x1b[31m\n",
             "A token holds an ESC control character (an ANSI color code).",
             ["csv_escape_char.csv:2:3", "'4\\x1b[31m'"])
    csv_case("csv_plus_minus", "1,2\n+-1,4\n", "The token '+-1' has two signs.",
             ["csv_plus_minus.csv:2:1", "'+-1'"])
    csv_case("csv_hex", "1,2\n0x10,4\n", "The token '0x10' is hexadecimal.",
             ["csv_hex.csv:2:1", "'0x10'"])
    csv_case("csv_exponent_overflow", "1,2\n3,1e99999999999999999999\n5,6\n",
             "'1e99999999999999999999' is far above float64's range (its exponent overflows 64 bits).",
             ["csv_exponent_overflow.csv:2:3", "overflows float64"])
    csv_case("csv_exponent_overflow_f32", "1,2\n3,-1e99999999999999999999\n5,6\n",
             "'-1e99999999999999999999' is far below float32's range, read as float32.",
             ["csv_exponent_overflow_f32.csv:2:3", "overflows float32"],
             extra=["--dtype", "float32"])
    csv_case("csv_f32_just_over_max", "1,2\n3,3.4028235678e38\n",
             "'3.4028235678e38' is just past the point where float32 rounds to infinity.",
             ["csv_f32_just_over_max.csv:2:3", "overflows float32"], extra=["--dtype", "float32"])
    csv_case("csv_longer_row", "1,2\n3,4,5\n", "Line 2 has 3 values where line 1 has 2.",
             ["csv_longer_row.csv:2:5", "more than 2 values"])
    csv_case("csv_unicode_minus", "1,2\n3,\u22124\n",
             "'\u22124' uses the Unicode minus sign U+2212 (pasted from a document).",
             ["csv_unicode_minus.csv:2:3", "not a number"])
    csv_case("csv_nbsp", "1,2\n3,\u00a04\n", "A no-break space U+00A0 precedes a number.",
             ["csv_nbsp.csv:2:3", "not a number"])
    csv_case("csv_space_inside", "1,2\n3,4 5\n", "The field '4 5' holds two numbers separated by a space.",
             ["csv_space_inside.csv:2:3", "'4 5'"])
    csv_case("csv_quoted", '"1","2"\n"3","4"\n', "Every number is in double quotes.",
             ["csv_quoted.csv:1:1", "'\"1\"'"])
    csv_case("csv_bom_midfile", "1,2\n\ufeff3,4\n",
             "A UTF-8 byte-order mark in the middle of the file (two files concatenated).",
             ["csv_bom_midfile.csv:2:1", "not a number"])
    csv_case("csv_formfeed", "1,2\n3,4\x0c5\n", "A token holds a form feed.",
             ["csv_formfeed.csv:2:3", "'4\\x0c5'"])
    csv_case("csv_c1_control", "1,2\n3,4\u009b31m\n",
             "A token holds U+009B, the C1 control character CSI (an ANSI escape in one character).",
             ["csv_c1_control.csv:2:3", "not a number"])
    csv_case("csv_token_latin1", None, "A token 'café' in Latin-1: byte 0xE9, not UTF-8.",
             ["csv_token_latin1.csv:2:3", "'caf\\xe9' is not a number"], raw=b"1,2\n3,caf\xe9\n")
    csv_case("csv_token_truncated_utf8", None,
             "A token ends with the first two bytes of the three of '€' (E2 82 AC).",
             ["csv_token_truncated_utf8.csv:2:3", "'4\\xe2\\x82' is not a number"],
             raw=b"1,2\n3,4\xe2\x82\n")
    csv_case("csv_long_token", "1,2\n3," + "9" * 100000 + "x\n",
             "A 100001-character token that is not a number.",
             ["csv_long_token.csv:2:3", "not a number"])
    csv_case("csv_utf16be_bom", None, "The file is UTF-16 BE text with a byte-order mark.",
             ["csv_utf16be_bom.csv:1:1", "UTF-16"], raw=b"\xfe\xff" + "1,2\n3,4\n".encode("utf-16-be"))
    put("csv_dy_bad.csv", "1,2,3\n4,5,6\n7,8,9\n1,2,3\n4,5,6\n7,8,nope\n")
    case("csv_dy_bad_token", "The CSV dy has the token 'nope' on line 6.",
         ["backward", "--x", "x.csv", "--dy", "csv_dy_bad.csv", "--dx", "dx.csv"],
         "csv_dy_bad.csv", ["csv_dy_bad.csv:6:5", "'nope'"], ["dx.csv"])

    # ------------------------------------------------------ cross-file and usage
    put("gamma_len4.npy", npy_bytes(np.ones(4)))
    case("gamma_wrong_length", "gamma has 4 values for 3 channels.",
         fwd("x.npy", "--gamma", "gamma_len4.npy"), "gamma_len4.npy",
         ["expected 3 values", "(4,)"], ["y.npy"])
    put("beta_len2.npy", npy_bytes(np.zeros(2)))
    case("beta_wrong_length", "beta has 2 values for 3 channels.",
         fwd("x.npy", "--beta", "beta_len2.npy"), "beta_len2.npy",
         ["expected 3 values", "(2,)"], ["y.npy"])
    put("dy_transposed.npy", npy_bytes(dy.reshape(C, N)))
    case("dy_shape_differs", "dy has shape (3, 6): the same element count as x's (6, 3), another shape.",
         bwd("x.npy", "dy_transposed.npy"), "dy_transposed.npy", ["(3, 6)", "(6, 3)"],
         ["dx.npy"])
    case("dy_dtype_differs", "dy is float32 while x is float64.",
         bwd("x.npy", "dy32.npy"), "dy32.npy", ["float32", "float64"], ["dx.npy"])
    case("shape_count_mismatch", "--shape 6,4 has 24 elements; the CSV has 18.",
         fwd("x.csv", "--shape", "6,4"), "x.csv", ["--shape", "24", "18"], ["y.npy"])
    case("shape_rows_mismatch", "--shape 3,6 has 18 elements like the CSV, but 3 rows for 6.",
         fwd("x.csv", "--shape", "3,6"), "x.csv", ["--shape", "rows"], ["y.npy"])
    put("x_1x3.npy", npy_bytes(x[:1]))
    case("batch_of_one", "x has shape (1, 3): one value per channel (m = 1).",
         fwd("x_1x3.npy"), "x_1x3.npy", ["m = 1"], ["y.npy"])
    put("x_0x3.npy", npy_bytes(np.zeros((0, C))))
    case("batch_of_zero", "x has shape (0, 3): no elements.",
         fwd("x_0x3.npy"), "x_0x3.npy", ["(0, 3)", "no elements"], ["y.npy"])
    put("x_6x0.npy", npy_bytes(np.zeros((N, 0))))
    case("zero_channels", "x has shape (6, 0): no channels.",
         fwd("x_6x0.npy"), "x_6x0.npy", ["(6, 0)", "no elements"], ["y.npy"])
    put("x_rank1.npy", npy_bytes(x[:, 0].copy()))
    case("rank1", "x is 1-D, shape (6,).", fwd("x_rank1.npy"), "x_rank1.npy",
         ["rank 2", "(6,)"], ["y.npy"])
    case("axis_out_of_range", "--axis 2 for a rank-2 tensor.", fwd("x.npy", "--axis", "2"),
         None, ["--axis 2", "out of range"], ["y.npy"])
    case("axis_not_integer", "--axis '1x' is not an integer.", fwd("x.npy", "--axis", "1x"),
         None, ["--axis"], ["y.npy"])
    case("eps_garbage", "--eps '1e-5x' has trailing garbage.", fwd("x.npy", "--eps", "1e-5x"),
         None, ["--eps", "'1e-5x'", "not a number"], ["y.npy"])
    case("eps_negative", "--eps -1 is negative.", fwd("x.npy", "--eps", "-1"),
         None, ["--eps", ">= 0"], ["y.npy"])
    case("eps_nan", "--eps nan is not finite.", fwd("x.npy", "--eps", "nan"),
         None, ["--eps"], ["y.npy"])
    case("eps_inf", "--eps inf is not finite.", fwd("x.npy", "--eps", "inf"),
         None, ["--eps"], ["y.npy"])
    case("eps_empty", "--eps '' is an empty string.", fwd("x.npy", "--eps", ""),
         None, ["--eps"], ["y.npy"])
    case("eps_overflow", "--eps 1e309 is beyond double's range.", fwd("x.npy", "--eps", "1e309"),
         None, ["--eps", "1e309", "range"], ["y.npy"])
    case("eps_underflow", "--eps 1e-400 is below the smallest double (it is not silently 0).",
         fwd("x.npy", "--eps", "1e-400"), None, ["--eps", "1e-400", "range"], ["y.npy"])
    case("axis_huge", "--axis 9223372036854775807 is an integer, but out of range.",
         fwd("x.npy", "--axis", "9223372036854775807"), None, ["--axis", "out of range"], ["y.npy"])
    xc = x.copy()
    xc[:, 1] = 0.75
    put("x_const_channel.npy", npy_bytes(xc))
    case("eps0_constant_channel", "Channel 1 is constant and --eps is 0, so invstd = 1/0.",
         fwd("x_const_channel.npy", "--eps", "0"), "x_const_channel.npy",
         ["channel 1", "eps = 0"], ["y.npy"])
    xn = x.copy()
    xn[2, 1] = np.nan
    put("x_nan.npy", npy_bytes(xn))
    case("nan_in_x", "x holds a NaN at index (2, 1).", fwd("x_nan.npy"), "x_nan.npy",
         ["nan", "index (2, 1)"], ["y.npy"])
    dyi = dy.copy()
    dyi[4, 0] = -np.inf
    put("dy_inf.npy", npy_bytes(dyi))
    case("inf_in_dy", "dy holds -inf at index (4, 0).", bwd("x.npy", "dy_inf.npy"),
         "dy_inf.npy", ["inf", "index (4, 0)"], ["dx.npy"])
    put("x_inf.csv", "1,2,3\n4,inf,6\n7,8,9\n")
    case("inf_in_csv_x", "The CSV x holds 'inf' on line 2.", fwd("x_inf.csv"), "x_inf.csv",
         ["inf", "index (1, 1)"], ["y.npy"])
    xf = np.asfortranarray(xn)
    put("x_nan_fortran.npy", npy_bytes(xf))
    case("nan_in_fortran_x",
         "A Fortran-order x holds a NaN at index (2, 1) (stored at another offset).",
         fwd("x_nan_fortran.npy"), "x_nan_fortran.npy", ["nan", "index (2, 1)"], ["y.npy"])
    put("x_nan_nd.csv", "1,2,3,4,5,6,7,8,9\n1,2,3,4,5,nan,7,8,9\n")
    case("nan_in_csv_nd", "A CSV x read with --shape 2,3,3 holds NaN at index (1, 1, 2).",
         fwd("x_nan_nd.csv", "--shape", "2,3,3"), "x_nan_nd.csv", ["nan", "index (1, 1, 2)"],
         ["y.npy"])
    put("gamma_nan.csv", "1,nan,1\n")
    case("nan_in_gamma", "gamma holds a NaN.", fwd("x.npy", "--gamma", "gamma_nan.csv"),
         "gamma_nan.csv", ["nan", "index (1,)"], ["y.npy"])
    put("gamma_2x3.csv", "1,2,3\n4,5,6\n")
    case("gamma_csv_matrix", "gamma is a 2x3 CSV matrix, not one row or column of 3 values.",
         fwd("x.npy", "--gamma", "gamma_2x3.csv"), "gamma_2x3.csv",
         ["expected 3 values", "(2, 3)"], ["y.npy"])
    put("gamma_f32.npy", npy_bytes(np.ones(C, np.float32)))
    case("gamma_dtype_differs", "gamma is float32 while x is float64.",
         fwd("x.npy", "--gamma", "gamma_f32.npy"), "gamma_f32.npy", ["float32", "float64"],
         ["y.npy"])
    put("gamma_f64.npy", npy_bytes(np.ones(C)))
    case("gamma_npy_vs_csv_x_float32", "x is CSV read as float32, gamma is a float64 NPY.",
         fwd("x.csv", "--dtype", "float32", "--gamma", "gamma_f64.npy"), "gamma_f64.npy",
         ["float64", "float32"], ["y.npy"])
    put("dy_short.csv", "1,2,3\n4,5,6\n")
    case("dy_csv_wrong_count", "The CSV dy has 2 rows of 3 for an x of shape (6, 3).",
         bwd("x.npy", "dy_short.csv"), "dy_short.csv", ["(6, 3)", "2 rows of 3"],
         ["dx.npy"])
    case("shape_contradicts_npy", "--shape 3,6 contradicts the NPY x, which is (6, 3).",
         fwd("x.npy", "--shape", "3,6"), "x.npy", ["--shape"], ["y.npy"])
    case("shape_garbage", "--shape '6,3x' is not a list of integers.",
         fwd("x.csv", "--shape", "6,3x"), None, ["--shape", "'6,3x'"], ["y.npy"])
    case("shape_rank_33", "--shape has 33 axes: numpy before 2.0 could not read the output.",
         fwd("x.csv", "--shape", "6,3" + ",1" * 31), None, ["--shape", "33 axes", "32"], ["y.npy"])

    case("output_is_input", "--y names the input x.npy.",
         ["forward", "--x", "x.npy", "--y", "x.npy"], "x.npy", ["same file"])
    case("output_is_input_dot_slash", "--y is ./x.npy, another spelling of the input x.npy.",
         ["forward", "--x", "x.npy", "--y", "./x.npy"], "./x.npy", ["same file"])
    os.symlink("x.npy", os.path.join(out, "link_to_x.npy"))
    case("output_is_input_symlink", "--y is a symlink to the input x.npy.",
         ["forward", "--x", "x.npy", "--y", "link_to_x.npy"], "link_to_x.npy", ["same file"])
    os.link(os.path.join(out, "x.npy"), os.path.join(out, "hardlink_to_x.npy"))
    case("output_is_input_hardlink", "--y is a hard link to the input x.npy.",
         ["forward", "--x", "x.npy", "--y", "hardlink_to_x.npy"], "hardlink_to_x.npy",
         ["same file"])
    case("output_is_input_dy", "backward's --dx names its input --dy.",
         ["backward", "--x", "x.npy", "--dy", "dy.npy", "--dx", "dy.npy", "--dgamma", "dg.npy"],
         "dy.npy", ["same file"], ["dg.npy"])
    case("output_is_input_late", "--invstd, the last output, names the input x.npy.",
         ["forward", "--x", "x.npy", "--y", "y.npy", "--mean", "mean.npy", "--invstd", "x.npy"],
         "x.npy", ["same file"], ["y.npy", "mean.npy"])
    case("report_is_input", "gradcheck's --report names the input x.npy.",
         ["gradcheck", "--x", "x.npy", "--report", "x.npy"], "x.npy", ["same file"])
    case("two_outputs_same_path", "--y and --mean name the same new file.",
         ["forward", "--x", "x.npy", "--y", "out.npy", "--mean", "out.npy"], "out.npy",
         ["same file"], ["out.npy"])
    case("two_outputs_same_file_spelled_apart", "--y out.csv and --invstd ./out.csv are one file.",
         ["forward", "--x", "x.npy", "--y", "out.csv", "--invstd", "./out.csv"], "out.csv",
         ["same file"], ["out.csv"])
    case("output_folder_missing", "The folder of --y does not exist.",
         ["forward", "--x", "x.npy", "--y", "nodir/y.npy"], "nodir/y.npy", ["does not exist"])
    case("output_folder_missing_late", "The folder of --invstd does not exist (y and mean are fine).",
         ["forward", "--x", "x.npy", "--y", "y.npy", "--mean", "mean.npy",
          "--invstd", "nodir/invstd.npy"], "nodir/invstd.npy", ["does not exist"],
         ["y.npy", "mean.npy"])
    os.mkdir(os.path.join(out, "folder.npy"))
    case("output_is_folder", "--y names an existing folder.",
         ["forward", "--x", "x.npy", "--y", "folder.npy"], "folder.npy", ["is a folder"])
    case("output_is_folder_no_extension", "--y names the current folder, '.', which has no file extension.",
         ["forward", "--x", "x.npy", "--y", "."], None, ["is a folder"])
    case("input_is_folder", "--x names a folder.",
         ["forward", "--x", "folder.npy", "--y", "y.npy"], "folder.npy", ["is a folder"],
         ["y.npy"])
    case("input_missing", "--x names a file that does not exist.",
         ["forward", "--x", "missing.npy", "--y", "y.npy"], "missing.npy", ["no such file"],
         ["y.npy"])
    case("gamma_missing", "--gamma names a file that does not exist.",
         fwd("x.npy", "--gamma", "nodir/gamma.npy"), "nodir/gamma.npy", ["no such file"],
         ["y.npy"])
    put("x.txt", good)
    case("unknown_extension", "--x is a valid NPY file named x.txt.",
         ["forward", "--x", "x.txt", "--y", "y.npy"], "x.txt", ["unknown file type"], ["y.npy"])
    case("output_unknown_extension", "--y is named y.json.",
         ["forward", "--x", "x.npy", "--y", "y.json"], "y.json", ["unknown file type"],
         ["y.json"])
    case("dtype_contradicts_npy", "--dtype float32 with a float64 NPY x.",
         fwd("x.npy", "--dtype", "float32"), "x.npy", ["--dtype float32", "float64"], ["y.npy"])
    case("dtype_unknown", "--dtype int8 is not one of float32, float64, float16, bfloat16.",
         fwd("x.csv", "--dtype", "int8"), None, ["--dtype"], ["y.npy"])
    # half precision (issue 26)
    put("x_u2.npy", npy_bytes((x.astype(np.float32).view(np.uint32) >> 16).astype("<u2")))
    case("npy_u2_without_dtype", "'<u2' bit patterns without --dtype bfloat16, which alone says they are bfloat16.",
         fwd("x_u2.npy"), "x_u2.npy", ["'<u2'", "--dtype bfloat16"], ["y.npy"])
    put("x_f16.npy", npy_bytes(x.astype(np.float16)))
    case("half_dtype_contradicts_npy", "--dtype bfloat16 with a float16 NPY x.",
         fwd("x_f16.npy", "--dtype", "bfloat16"), "x_f16.npy", ["--dtype bfloat16", "float16"], ["y.npy"])
    put("gamma_bf16.npy", npy_bytes((np.ones(C, np.float32).view(np.uint32) >> 16).astype(np.uint16).view("V2")))
    case("half_gamma_other_half", "gamma is bfloat16 while x is float16 (gamma may be float16 or float32).",
         fwd("x_f16.npy", "--gamma", "gamma_bf16.npy"), "gamma_bf16.npy", ["bfloat16", "float16"], ["y.npy"])
    put("dy_f32.npy", npy_bytes(dy.astype(np.float32)))
    case("half_dy_float32", "dy is float32 while x is float16 (dy must have x's dtype).",
         ["backward", "--x", "x_f16.npy", "--dy", "dy_f32.npy", "--dx", "dx.npy"], "dy_f32.npy",
         ["float32", "float16"], ["dx.npy"])
    put("x_f16_overflow.csv", "1,2,3\n4,70000,6\n")
    case("csv_float16_overflow", "70000 is beyond float16's largest value, 65504.",
         fwd("x_f16_overflow.csv", "--dtype", "float16"), "x_f16_overflow.csv",
         ["x_f16_overflow.csv:2:3", "overflows float16"], ["y.npy"])
    put("npy_dtype_void4.npy", raw_npy(header(descr="'|V4'"), good_data[:N * C * 4]))
    case("npy_dtype_void4", "Four-byte void elements ('|V4'): only two-byte '<V2' is read, as bfloat16.",
         fwd("npy_dtype_void4.npy"), "npy_dtype_void4.npy", ["'|V4'", "void"], ["y.npy"])
    put("dx_given.npy", npy_bytes(dy))
    case("gradcheck_dx_without_dy", "gradcheck judges a given --dx but has no --dy it belongs to.",
         ["gradcheck", "--x", "x.npy", "--dx", "dx_given.npy"], None, ["--dy"])
    case("gradcheck_rtol_garbage", "--rtol '1e-9x' has trailing garbage.",
         ["gradcheck", "--x", "x.npy", "--rtol", "1e-9x", "--report", "report.json"], None,
         ["--rtol", "'1e-9x'"], ["report.json"])
    case("gradcheck_seed_garbage", "--seed 'abc' is not a non-negative integer.",
         ["gradcheck", "--x", "x.npy", "--seed", "abc", "--report", "report.json"], None,
         ["--seed", "'abc'"], ["report.json"])
    case("missing_x", "forward without --x.", ["forward", "--y", "y.npy"], None, ["--x"],
         ["y.npy"])
    case("missing_y", "forward without --y.", ["forward", "--x", "x.npy"], None, ["--y"])
    case("unknown_option", "An unknown option --bogus.",
         fwd("x.npy", "--bogus", "1"), None, ["--bogus"], ["y.npy"])
    case("unknown_subcommand", "An unknown subcommand 'sideways'.",
         ["sideways", "--x", "x.npy", "--y", "y.npy"], None, ["sideways"], ["y.npy"])
    case("option_without_value", "--eps is the last word, with no value.",
         fwd("x.npy", "--eps"), None, ["--eps"], ["y.npy"])

    os.symlink(".", os.path.join(out, "here"))
    case("output_is_input_via_dir_symlink", "--y is here/x.npy, where here is a symlink to '.'.",
         ["forward", "--x", "x.npy", "--y", "here/x.npy"], "here/x.npy", ["same file"])
    put("x.npy.csv", "not a folder\n")
    case("output_parent_is_file", "The folder part of --y, x.npy.csv, is a file.",
         ["forward", "--x", "x.npy", "--y", "x.npy.csv/y.npy"], "x.npy.csv/y.npy", ["not a folder"],
         ["x.npy.csv/y.npy"])
    case("output_late_is_folder", "--mean names an existing folder (y.npy is fine).",
         ["forward", "--x", "x.npy", "--y", "y.npy", "--mean", "folder.npy"], "folder.npy",
         ["is a folder"], ["y.npy"])
    os.mkfifo(os.path.join(out, "fifo.npy"))
    case("input_is_fifo", "--x names a named pipe (FIFO), which must not be opened and waited on.",
         ["forward", "--x", "fifo.npy", "--y", "y.npy"], "fifo.npy", ["not a regular file"],
         ["y.npy"])
    put("old_y.npy", npy_bytes(np.arange(3.0)))
    case("existing_output_kept_bad_input",
         "x holds a NaN; the existing --y file old_y.npy must keep its bytes.",
         ["forward", "--x", "x_nan.npy", "--y", "old_y.npy"], "x_nan.npy", ["index (2, 1)"])
    case("existing_output_kept_late_failure",
         "The folder of --invstd is missing; the existing --y file old_y.npy must keep its bytes.",
         ["forward", "--x", "x.npy", "--y", "old_y.npy", "--mean", "mean.csv",
          "--invstd", "nodir/invstd.csv"], "nodir/invstd.csv", ["does not exist"], ["mean.csv"])
    case("gradcheck_batch_of_one", "gradcheck on x of shape (1, 3).",
         ["gradcheck", "--x", "x_1x3.npy", "--report", "report.json"], "x_1x3.npy", ["m = 1"],
         ["report.json"])
    case("gradcheck_dx_shape", "gradcheck's --dx has shape (3, 6) for x (6, 3).",
         ["gradcheck", "--x", "x.npy", "--dy", "dy.npy", "--dx", "dy_transposed.npy"],
         "dy_transposed.npy", ["(3, 6)", "(6, 3)"])
    case("gradcheck_dgamma_length", "gradcheck's --dgamma has 4 values for 3 channels.",
         ["gradcheck", "--x", "x.npy", "--dy", "dy.npy", "--dgamma", "gamma_len4.npy"],
         "gamma_len4.npy", ["expected 3 values"])
    case("gradcheck_nan_x", "gradcheck on x holding a NaN.",
         ["gradcheck", "--x", "x_nan.npy", "--report", "report.json"], "x_nan.npy",
         ["index (2, 1)"], ["report.json"])
    case("gradcheck_atol_negative", "--atol -1 is negative.",
         ["gradcheck", "--x", "x.npy", "--atol", "-1"], None, ["--atol", ">= 0"])
    case("gradcheck_rtol_nan", "--rtol nan is not finite.",
         ["gradcheck", "--x", "x.npy", "--rtol", "nan"], None, ["--rtol"])
    case("gradcheck_report_folder_missing", "The folder of --report does not exist.",
         ["gradcheck", "--x", "x.npy", "--report", "nodir/report.json"], "nodir/report.json",
         ["does not exist"])

    # Empty strings: an option given as '' is not the option left out.
    case("empty_y", "--y is the empty string: no output path at all.",
         ["forward", "--x", "x.npy", "--y", ""], None, ["--y"])
    case("empty_mean", "--mean is the empty string.",
         ["forward", "--x", "x.npy", "--y", "y.npy", "--mean", ""], None, ["--mean"], ["y.npy"])
    case("empty_dx", "backward's --dx is the empty string.",
         ["backward", "--x", "x.npy", "--dy", "dy.npy", "--dx", ""], None, ["--dx"])
    case("empty_dy", "backward's --dy is the empty string.",
         ["backward", "--x", "x.npy", "--dy", "", "--dx", "dx.npy"], None, ["--dy"], ["dx.npy"])
    case("empty_gamma", "--gamma is the empty string.",
         ["forward", "--x", "x.npy", "--gamma", "", "--y", "y.npy"], None, ["--gamma"], ["y.npy"])
    case("empty_shape", "--shape is the empty string.",
         ["forward", "--x", "x.csv", "--shape", "", "--y", "y.npy"], None, ["--shape"], ["y.npy"])
    case("empty_axis", "--axis is the empty string.",
         ["forward", "--x", "x.npy", "--axis", "", "--y", "y.npy"], None, ["--axis"], ["y.npy"])
    case("empty_x", "--x is the empty string.", ["forward", "--x", "", "--y", "y.npy"], None,
         ["--x"], ["y.npy"])
    case("gradcheck_empty_dy", "gradcheck's --dy is the empty string.",
         ["gradcheck", "--x", "x.npy", "--dy", "", "--report", "report.json"], None, ["--dy"],
         ["report.json"])
    case("gradcheck_empty_report", "gradcheck's --report is the empty string.",
         ["gradcheck", "--x", "x.npy", "--report", ""], None, ["--report"])

    # Control characters in arguments: the message must show them escaped, on one line.
    # "file" is null because the raw path cannot appear in a one-line message; "expect"
    # holds the printable part of the name.
    case("input_name_newline", "--x names a missing file whose name holds a newline.",
         ["forward", "--x", "bad\nname.npy", "--y", "y.npy"], None, ["name.npy", "no such file"],
         ["y.npy"])
    case("input_name_escape", "--x names a missing file whose name holds an ESC character.",
         ["forward", "--x", "bad\x1b[31mname.npy", "--y", "y.npy"], None,
         ["name.npy", "no such file"], ["y.npy"])
    case("output_folder_name_newline", "The missing folder of --y has a newline in its name.",
         ["forward", "--x", "x.npy", "--y", "no\ndir/y.npy"], None, ["dir/y.npy", "does not exist"],
         ["no\ndir/y.npy"])
    case("eps_newline", "--eps '1e-5' followed by a newline.",
         fwd("x.npy", "--eps", "1e-5\n"), None, ["--eps", "not a number"], ["y.npy"])
    case("axis_escape", "--axis '1' followed by an ANSI color code.",
         fwd("x.npy", "--axis", "1\x1b[31m"), None, ["--axis"], ["y.npy"])
    case("shape_escape", "--shape '6,3' followed by an ESC character.",
         fwd("x.csv", "--shape", "6,3\x1b"), None, ["--shape"], ["y.npy"])
    case("dtype_newline", "--dtype 'float\\n32' holds a newline.",
         fwd("x.csv", "--dtype", "float\n32"), None, ["--dtype"], ["y.npy"])
    # Bytes that are not UTF-8 in arguments (a Latin-1 'é', 0xE9, in a file name; Python
    # holds it as the surrogate U+DCE9 and passes the byte back to bnorm): the message
    # must show it as \xe9. "file" is null, as for control characters.
    latin1_missing = os.fsdecode(b"caf\xe9.npy")
    case("input_name_latin1", "--x names a missing file whose name holds byte 0xE9 (Latin-1 'é').",
         ["forward", "--x", latin1_missing, "--y", "y.npy"], None,
         ["caf\\xe9.npy", "no such file"], ["y.npy"])
    latin1_bad = put(os.fsdecode(b"bad_caf\xe9.npy"), b"not an npy file at all\n")
    case("input_name_latin1_bad_file",
         "--x names an existing file that is not NPY, whose name holds byte 0xE9.",
         ["forward", "--x", latin1_bad, "--y", "y.npy"], None,
         ["bad_caf\\xe9.npy", "not an NPY file"], ["y.npy"])
    latin1_csv = put(os.fsdecode(b"caf\xe9.csv"), "1,2\n3,x\n")
    case("input_name_latin1_csv", "A CSV file whose name holds byte 0xE9 has a bad token on line 2.",
         ["forward", "--x", latin1_csv, "--y", "y.npy"], None,
         ["caf\\xe9.csv:2:3", "'x' is not a number"], ["y.npy"])
    latin1_out = os.fsdecode(b"y_caf\xe9.npy")
    case("output_folder_name_latin1",
         "--y names a file in a missing folder; both names hold byte 0xE9.",
         ["forward", "--x", "x.npy", "--y", os.fsdecode(b"no_dir_\xe9/") + latin1_out], None,
         ["no_dir_\\xe9/y_caf\\xe9.npy", "does not exist"],
         [os.fsdecode(b"no_dir_\xe9/") + latin1_out])
    case("eps_latin1", "--eps '1e-5' followed by byte 0xE9.",
         fwd("x.npy", "--eps", os.fsdecode(b"1e-5\xe9")), None, ["--eps '1e-5\\xe9'", "not a number"],
         ["y.npy"])
    case("dtype_latin1", "--dtype 'float32' followed by byte 0xE9 (refused by CLI11).",
         fwd("x.csv", "--dtype", os.fsdecode(b"float32\xe9")), None, ["--dtype", "float32\\xe9"],
         ["y.npy"])
    case("unknown_option_newline", "An unknown option whose name holds a newline.",
         fwd("x.npy", "--bo\ngus"), None, ["gus"], ["y.npy"])

    # ------------------------------------- inference mode and running statistics
    # Valid running statistics for x.npy (C = 3), and bad ones. "R" is the pair of valid
    # running inputs; "NEW" asks for both updated statistics (outputs that must not
    # appear when the run fails).
    put("rm.npy", npy_bytes(np.array([0.1, -0.2, 0.3])))
    put("rv.npy", npy_bytes(np.array([0.5, 1.5, 2.0])))
    R = ["--running-mean", "rm.npy", "--running-var", "rv.npy"]
    NEW = ["--new-running-mean", "nrm.npy", "--new-running-var", "nrv.npy"]

    def fwd_eval(*more):
        return ["forward", "--mode", "eval", "--x", "x.npy", "--y", "y.npy"] + list(more)

    def fwd_update(*more):
        return ["forward", "--x", "x.npy", "--y", "y.npy"] + list(more)

    case("eval_without_running", "--mode eval with neither --running-mean nor --running-var.",
         fwd_eval(), None, ["--running-mean", "--running-var"], ["y.npy"])
    case("eval_without_running_var", "--mode eval with --running-mean but no --running-var.",
         fwd_eval("--running-mean", "rm.npy"), None, ["--running-var"], ["y.npy"])
    case("eval_backward_without_running_mean",
         "backward --mode eval with --running-var but no --running-mean.",
         ["backward", "--mode", "eval", "--x", "x.npy", "--dy", "dy.npy", "--running-var",
          "rv.npy", "--dx", "dx.npy"], None, ["--running-mean"], ["dx.npy"])
    case("eval_gradcheck_without_running_var",
         "gradcheck --mode eval with --running-mean but no --running-var.",
         ["gradcheck", "--mode", "eval", "--x", "x.npy", "--running-mean", "rm.npy",
          "--report", "report.json"], None, ["--running-var"], ["report.json"])
    case("new_running_without_running_inputs",
         "--new-running-mean asked for without --running-mean and --running-var.",
         fwd_update("--new-running-mean", "nrm.npy"), None, ["--new-running-mean"],
         ["y.npy", "nrm.npy"])
    case("new_running_var_without_running_var",
         "--new-running-var asked for with --running-mean but no --running-var.",
         fwd_update("--running-mean", "rm.npy", "--new-running-var", "nrv.npy"), None,
         ["--running-var"], ["y.npy", "nrv.npy"])
    for name, value, why in [
            ("momentum_negative", "-0.1", "--momentum -0.1 is below 0."),
            ("momentum_above_one", "1.5", "--momentum 1.5 is above 1."),
            ("momentum_nan", "nan", "--momentum nan is not a number in [0, 1]."),
            ("momentum_garbage", "0.1x", "--momentum '0.1x' has trailing garbage.")]:
        case(name, why, fwd_update(*(R + NEW + ["--momentum", value])), None,
             ["--momentum"], ["y.npy", "nrm.npy", "nrv.npy"])
    for name, value, why in [
            ("running_var_correction_2", "2", "--running-var-correction 2 is not 0 or 1."),
            ("running_var_correction_half", "0.5",
             "--running-var-correction 0.5 is not 0 or 1.")]:
        case(name, why, fwd_update(*(R + NEW + ["--running-var-correction", value])), None,
             ["--running-var-correction"], ["y.npy", "nrm.npy", "nrv.npy"])
    case("eval_with_mean_output", "--mean asked for in --mode eval (refused, not written).",
         fwd_eval(*(R + ["--mean", "mean.npy"])), None, ["--mean"], ["y.npy", "mean.npy"])
    case("eval_with_invstd_output", "--invstd asked for in --mode eval (refused, not written).",
         fwd_eval(*(R + ["--invstd", "invstd.npy"])), None, ["--invstd"],
         ["y.npy", "invstd.npy"])
    case("mode_unknown", "--mode inference is not train or eval.",
         ["forward", "--mode", "inference", "--x", "x.npy", "--y", "y.npy"] + R, None,
         ["--mode"], ["y.npy"])
    put("rm_len4.npy", npy_bytes(np.zeros(4)))
    case("running_mean_wrong_length", "The running mean has 4 values for 3 channels.",
         fwd_eval("--running-mean", "rm_len4.npy", "--running-var", "rv.npy"), "rm_len4.npy",
         ["(4,)", "(6, 3)"], ["y.npy"])
    put("rv_len2.npy", npy_bytes(np.ones(2)))
    case("running_var_wrong_length",
         "The running variance has 2 values for 3 channels (training with the update).",
         fwd_update(*(["--running-mean", "rm.npy", "--running-var", "rv_len2.npy"] + NEW)),
         "rv_len2.npy", ["(2,)", "(6, 3)"], ["y.npy", "nrm.npy", "nrv.npy"])
    put("rm_f32.npy", npy_bytes(np.array([0.1, -0.2, 0.3], np.float32)))
    case("running_mean_dtype_differs", "The running mean is float32 while x is float64.",
         fwd_eval("--running-mean", "rm_f32.npy", "--running-var", "rv.npy"), "rm_f32.npy",
         ["float32", "float64"], ["y.npy"])
    put("rv_negative.npy", npy_bytes(np.array([0.5, -0.25, 2.0])))
    case("running_var_negative_eval", "The running variance of channel 1 is -0.25 (eval).",
         fwd_eval("--running-mean", "rm.npy", "--running-var", "rv_negative.npy"),
         "rv_negative.npy", ["channel 1"], ["y.npy"])
    case("running_var_negative_update",
         "The running variance of channel 1 is -0.25 (training with the update).",
         fwd_update(*(["--running-mean", "rm.npy", "--running-var", "rv_negative.npy"] + NEW)),
         "rv_negative.npy", ["channel 1"], ["y.npy", "nrm.npy", "nrv.npy"])
    put("rv_zero.npy", npy_bytes(np.array([0.5, 1.5, 0.0])))
    case("running_var_plus_eps_zero",
         "The running variance of channel 2 is 0 and --eps is 0: 1/sqrt(0) in eval mode.",
         fwd_eval(*["--running-mean", "rm.npy", "--running-var", "rv_zero.npy", "--eps", "0"]),
         "rv_zero.npy", ["channel 2"], ["y.npy"])
    case("running_var_plus_eps_zero_backward",
         "backward --mode eval, running variance 0 in channel 2 and --eps 0.",
         ["backward", "--mode", "eval", "--x", "x.npy", "--dy", "dy.npy", "--running-mean",
          "rm.npy", "--running-var", "rv_zero.npy", "--eps", "0", "--dx", "dx.npy"],
         "rv_zero.npy", ["channel 2"], ["dx.npy"])
    put("rm_nan.npy", npy_bytes(np.array([0.1, np.nan, 0.3])))
    case("nan_in_running_mean", "The running mean holds a NaN at index 1.",
         fwd_eval("--running-mean", "rm_nan.npy", "--running-var", "rv.npy"), "rm_nan.npy",
         ["nan", "index (1,)"], ["y.npy"])
    put("rv_inf.csv", "0.5\ninf\n2\n")
    case("inf_in_running_var_csv",
         "The CSV running variance holds 'inf' at index 1 (training with the update).",
         fwd_update(*(["--running-mean", "rm.npy", "--running-var", "rv_inf.csv"] + NEW)),
         "rv_inf.csv", ["inf", "index (1,)"], ["y.npy", "nrm.npy", "nrv.npy"])
    case("running_var_given_to_backward_train",
         "--running-var given to backward in training mode (used only with --mode eval).",
         ["backward", "--x", "x.npy", "--dy", "dy.npy", "--running-var", "rv.npy",
          "--dx", "dx.npy"], None, ["--running-var"], ["dx.npy"])
    case("running_mean_given_to_gradcheck_train",
         "--running-mean given to gradcheck in training mode (used only with --mode eval).",
         ["gradcheck", "--x", "x.npy", "--running-mean", "rm.npy", "--report", "report.json"],
         None, ["--running-mean"], ["report.json"])
    case("running_mean_missing_file", "--running-mean names a file that does not exist.",
         fwd_eval("--running-mean", "nodir/rm.npy", "--running-var", "rv.npy"),
         "nodir/rm.npy", ["no such file"], ["y.npy"])
    case("empty_running_var", "--running-var is the empty string.",
         fwd_eval("--running-mean", "rm.npy", "--running-var", ""), None, ["--running-var"],
         ["y.npy"])

    # bnorm compare: candidates of the wrong shape, missing inputs, criteria in conflict
    # (dy.npy stands for a valid candidate of x's shape, rm.npy for one of C values)
    def cmp(*more):
        return ["compare", "--x", "x.npy"] + list(more)

    case("compare_no_candidate", "compare with no candidate to judge.", cmp("--report", "report.json"), None,
         ["at least one candidate"], ["report.json"])
    case("compare_dx_without_dy", "compare judges a --dx but has no --dy it belongs to.",
         cmp("--dx", "dy.npy", "--report", "report.json"), None, ["--dy"], ["report.json"])
    case("compare_y_shape", "compare's --y has shape (3, 6) for x (6, 3).",
         cmp("--y", "dy_transposed.npy", "--report", "report.json"), "dy_transposed.npy", ["(3, 6)", "(6, 3)"],
         ["report.json"])
    case("compare_dgamma_length", "compare's --dgamma has 4 values for 3 channels.",
         cmp("--dy", "dy.npy", "--dgamma", "gamma_len4.npy"), "gamma_len4.npy", ["(4,)", "(3,)"])
    case("compare_tol_eps_and_rtol", "compare given both --tol-eps and --rtol (two criteria).",
         cmp("--y", "dy.npy", "--tol-eps", "4", "--rtol", "1e-6"), None, ["--tol-eps", "--rtol"])
    case("compare_rtol_negative", "compare's --rtol -1 is negative.", cmp("--y", "dy.npy", "--rtol", "-1"), None,
         ["--rtol", ">= 0"])
    case("compare_tol_eps_garbage", "compare's --tol-eps '4x' has trailing garbage.",
         cmp("--y", "dy.npy", "--tol-eps", "4x"), None, ["--tol-eps"])
    case("compare_eval_mean", "compare --mode eval judging a batch --mean, which eval mode has not.",
         ["compare", "--mode", "eval", "--x", "x.npy"] + R + ["--mean", "rm.npy"], None, ["--mean"])
    case("compare_new_running_without_running", "compare judges --new-running-mean without the running inputs.",
         cmp("--new-running-mean", "rm.npy"), None, ["--running-mean"])
    case("compare_momentum_without_update", "compare given --momentum with no running statistic to judge.",
         cmp("--y", "dy.npy", "--momentum", "0.5"), None, ["--momentum"])
    case("compare_nan_x", "compare on x holding a NaN.", ["compare", "--x", "x_nan.npy", "--y", "dy.npy",
         "--report", "report.json"], "x_nan.npy", ["index (2, 1)"], ["report.json"])
    case("compare_report_is_candidate", "compare's --report names the candidate dy.npy.",
         cmp("--y", "dy.npy", "--report", "dy.npy"), "dy.npy", ["same file"])
    case("compare_candidate_missing", "compare's --y names a file that does not exist.",
         cmp("--y", "nodir/y.npy"), "nodir/y.npy", ["no such file"])

    # bnorm gen: its options (nothing read; the suite folder must not appear)
    def gen(*more, suite="hard", shape="6,3", dtype="float64", seed="1", out="suite"):
        return ["gen", "--suite", suite, "--shape", shape, "--dtype", dtype, "--seed", seed, "--out", out] + list(more)

    case("gen_suite_unknown", "gen's --suite 'easy' is not a suite.", gen(suite="easy"), None,
         ["--suite", "easy", "ordinary, hard"], ["suite"])
    case("gen_dtype_unknown", "gen's --dtype int8 is not a dtype.", gen(dtype="int8"), None, ["--dtype", "int8"],
         ["suite"])
    case("gen_dtype_half_misspelt", "gen's --dtype bf16 is not a dtype (the half types are float16 and bfloat16).",
         gen(dtype="bf16"), None, ["--dtype", "bf16", "float16, bfloat16"], ["suite"])
    case("gen_seed_negative", "gen's --seed -1 is negative.", gen(seed="-1"), None, ["--seed", "-1"], ["suite"])
    case("gen_seed_too_big", "gen's --seed 2^64 does not fit 64 bits.", gen(seed="18446744073709551616"), None,
         ["--seed"], ["suite"])
    os.mkdir(os.path.join(out, "full"))
    put("full/keep.txt", "a file\n")
    case("gen_out_not_empty", "gen's --out names a folder that holds files.", gen(out="full"), None,
         ["--out", "not empty"])
    case("gen_out_current_folder", "gen's --out . names the current folder, which rename(2) cannot replace.",
         gen(out="."), None, ["--out", "current folder"])
    os.symlink("folder.npy", os.path.join(out, "suite_link"))
    case("gen_out_symlink", "gen's --out is a symbolic link to an empty folder (rename(2) would replace the link).",
         gen(out="suite_link"), None, ["--out", "symbolic link"])
    case("gen_out_is_file", "gen's --out names a file.", gen(out="x.npy"), None, ["--out", "not a folder"])
    case("gen_out_parent_missing", "gen's --out is in a folder that does not exist.", gen(out="nodir/suite"), None,
         ["--out", "does not exist"])
    case("gen_shape_m1", "gen's --shape 1,3 gives batch norm sets of one element.", gen(shape="1,3"), None,
         ["m = 1"], ["suite"])
    case("gen_shape_garbage", "gen's --shape '6,x' is not a list of integers.", gen(shape="6,x"), None,
         ["--shape"], ["suite"])
    case("gen_group_without_groups", "gen --norm group without --groups.", gen("--norm", "group"), None,
         ["--groups"], ["suite"])
    case("gen_groups_not_dividing", "gen --norm group --groups 2 for C = 3.", gen("--norm", "group", "--groups", "2"),
         None, ["--groups 2", "C = 3"], ["suite"])
    case("gen_format_unknown", "gen's --format txt is not a format.", gen("--format", "txt"), None,
         ["--format", "txt"], ["suite"])
    case("gen_axis_out_of_range", "gen's --axis 2 for a shape of rank 2.", gen("--axis", "2"), None, ["axis"],
         ["suite"])

    # ------------------------- the normalization family (scripts/bad_inputs_family.py)
    add_family_cases(put, case, npy_bytes)

    with open(os.path.join(out, "catalog.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    return cases


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    cases = build(sys.argv[1])
    print("wrote %d bad-input cases to %s" % (len(cases), sys.argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
