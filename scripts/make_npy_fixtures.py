#!/usr/bin/python3
"""Writes NPY files with numpy itself into tests/data/npy/, for bnorm's reader and writer tests.

Every array holds v[i] = (i - 3) / 4 in C order (exact in float16, float32 and float64), so
a test knows the expected values without reading anything but the shape. manifest.json lists
each file with its shape, the dtype bnorm should load it as, and whether bnorm's own writer
must reproduce the file byte for byte (plain little-endian C-order float16/float32/float64,
which is what np.save writes by default; bfloat16 with descr '<V2', as ml_dtypes' arrays are
saved).

Usage: /usr/bin/python3 scripts/make_npy_fixtures.py [OUT_DIR]   (default tests/data/npy)
"""
import json
import os
import sys

import numpy as np
from numpy.lib import format as npformat


def values(shape, dtype):
    n = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    return ((np.arange(n, dtype=np.float64) - 3) / 4).astype(dtype).reshape(shape)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "npy")
    os.makedirs(out, exist_ok=True)
    manifest = []

    def save(name, arr, loads_as, byte_identical, version=None, fortran=False):
        path = os.path.join(out, name)
        if version is None and not fortran:
            np.save(path, arr)
        else:
            with open(path, "wb") as f:
                a = np.asfortranarray(arr) if fortran else arr
                npformat.write_array(f, a, version=version)
        manifest.append({"file": name, "shape": list(arr.shape), "dtype": loads_as,
                         "byte_identical": byte_identical})

    for dt, name in ((np.float64, "f8"), (np.float32, "f4")):
        loads = "float64" if dt == np.float64 else "float32"
        for shape in [(), (1,), (3,), (2, 3), (2, 3, 4), (2, 3, 4, 5), (0, 3), (8, 1),
                      (12345678901, 0), (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2)]:
            tag = "x".join(str(d) for d in shape) or "scalar"
            save(f"le_{name}_{tag}.npy", values(shape, dt), loads, True)
        save(f"be_{name}_2x3x4.npy", values((2, 3, 4), dt).astype(">" + name), loads, False)
        save(f"fortran_{name}_2x3x4.npy", values((2, 3, 4), dt), loads, False, fortran=True)
        save(f"v2_{name}_2x3.npy", values((2, 3), dt), loads, False, version=(2, 0))
        save(f"v3_{name}_2x3.npy", values((2, 3), dt), loads, False, version=(3, 0))
    save("le_f2_2x3.npy", values((2, 3), np.float16), "float16", True)
    save("be_f2_2x3.npy", values((2, 3), np.float16).astype(">f2"), "float16", False)

    # bfloat16, which numpy lacks: the top 16 bits of each float32, saved as two opaque
    # bytes ('|V2', what np.save writes for them), with descr '<V2' (ml_dtypes' arrays) and
    # with the hand-written descr 'bfloat16'
    bits = (values((2, 3), np.float32).view(np.uint32) >> 16).astype(np.uint16)
    save("bf16_V2_2x3.npy", bits.view("V2"), "bfloat16", False)

    def save_descr(name, descr, byte_identical):
        header = npformat._wrap_header(
            "{'descr': '%s', 'fortran_order': False, 'shape': (2, 3), }" % descr + " " * 20, (1, 0))
        with open(os.path.join(out, name), "wb") as f:
            f.write(header + bits.astype("<u2").tobytes())
        manifest.append({"file": name, "shape": [2, 3], "dtype": "bfloat16", "byte_identical": byte_identical})

    save_descr("bf16_lV2_2x3.npy", "<V2", True)
    save_descr("bf16_named_2x3.npy", "bfloat16", False)

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {len(manifest)} NPY fixtures to {out}")


if __name__ == "__main__":
    main()
