"""The small test runner that the CLI test scripts share, the folder snapshots they use to
prove that a failed run changed nothing, and the helpers several of them call: notes,
PyTorch's import, a relative difference, .npy inputs and bnorm's JSON-reporting commands.

Each script defines test_* functions that raise Fail (through check) on a failed
expectation; run_tests() calls them in order (or only those whose name contains one of
the substrings given after the bnorm path), prints `PASS name` or `FAIL name: reason`,
then `N passed, M failed`, and returns the exit status: 1 if any test failed.
"""

import json
import os
import subprocess
import sys
import time
import traceback

import numpy as np


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def note(msg):
    """An indented line among the PASS/FAIL lines: what a test skipped or measured."""
    print("  note: " + msg)
    sys.stdout.flush()


def import_torch():
    """(torch, torch.nn.functional), or (None, None) where torch is not installed or does
    not import: the peer tests then pass with a note that they were skipped."""
    try:
        import torch
        import torch.nn.functional as F
    except Exception:  # ImportError, or a broken installation
        return None, None
    return torch, F


def rel(got, ref):
    """max |got - ref| over max |ref| (1 if ref is all zeros); inf for another shape or a
    NaN difference."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return float("inf")
    scale = float(np.max(np.abs(ref))) or 1.0
    d = np.abs(got - ref)
    return float("inf") if np.any(np.isnan(d)) else float(np.max(d)) / scale


def save_arrays(folder, **arrays):
    """Each array as folder/<name>.npy."""
    for name, a in arrays.items():
        np.save(os.path.join(folder, name + ".npy"), a)


def run_ok(bnorm, folder, args):
    """Runs `bnorm args...` in folder; a failure unless it exits 0."""
    p = subprocess.run([bnorm] + args, cwd=folder, capture_output=True, text=True)
    check(p.returncode == 0, "bnorm %s: exit %d, stderr %r" % (" ".join(args), p.returncode, p.stderr.strip()))


def json_command(bnorm, command, folder, args):
    """Runs `bnorm command args...` (compare, gradcheck) in folder: (exit code, the JSON
    report it printed for exit 0 or 1, else None, stderr)."""
    p = subprocess.run([bnorm, command] + args, cwd=folder, capture_output=True, text=True)
    report = json.loads(p.stdout) if p.returncode in (0, 1) else None
    return p.returncode, report, p.stderr


def snapshot(folder):
    """Every entry under folder (hidden ones too): its kind and content."""
    snap = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, folder)
            if os.path.islink(p):
                snap[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                snap[rel] = ("dir",)
            else:
                with open(p, "rb") as f:
                    snap[rel] = ("file", f.read())
    return snap


def snapshot_diff(before, after):
    """What changed between two snapshots, as one line ('' when nothing did)."""
    out = []
    for k in sorted(set(before) | set(after)):
        if k not in before:
            out.append("created %s" % k)
        elif k not in after:
            out.append("removed %s" % k)
        elif before[k] != after[k]:
            out.append("changed %s" % k)
    return ", ".join(out)


def check_error(cmd, rc, err, before, after, contains=()):
    """The error contract every failing run must keep: exit code 2, exactly one line on
    stderr starting with `bnorm: error: ` and holding every string of `contains`, and the
    folder unchanged (before/after are snapshots of it). Returns the message."""
    check(rc == 2, "%s: exit %d (expected 2), stderr %r" % (cmd, rc, err[-500:]))
    check(err.endswith("\n") and err.count("\n") == 1,
          "%s: stderr is not exactly one line: %r" % (cmd, err))
    check(err.startswith("bnorm: error: "),
          "%s: stderr does not start with 'bnorm: error: ': %r" % (cmd, err))
    for c in contains:
        check(c in err, "%s: message lacks %r: %r" % (cmd, c, err))
    diff = snapshot_diff(before, after)
    check(not diff, "%s: the folder changed: %s (stderr %r)" % (cmd, diff, err))
    return err.rstrip("\n")


def run_tests(namespace, doc):
    """Runs the test_* functions of `namespace` (a script's globals()). argv[1] is the
    bnorm executable, set as the script's global BNORM; further arguments select tests
    by name."""
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(doc)
        return 2
    namespace["BNORM"] = os.path.abspath(sys.argv[1])
    only = sys.argv[2:]
    tests = [(n, f) for n, f in namespace.items()
             if n.startswith("test_") and callable(f) and (not only or any(s in n for s in only))]
    passed = failed = 0
    t0 = time.perf_counter()
    for name, f in tests:
        try:
            f()
        except Fail as e:
            failed += 1
            print("FAIL %s: %s" % (name, e))
        except Exception:
            failed += 1
            print("FAIL %s: %s" % (name, traceback.format_exc().strip().replace("\n", "\n    ")))
        else:
            passed += 1
            print("PASS %s" % name)
        sys.stdout.flush()
    print("(%.1fs)" % (time.perf_counter() - t0))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0
