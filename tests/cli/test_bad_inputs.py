#!/usr/bin/python3
"""bnorm's error contract, on a catalog of bad inputs (scripts/make_bad_inputs.py).

Usage (Debian's Python, which has numpy):

    /usr/bin/python3 tests/cli/test_bad_inputs.py BNORM [NAME-SUBSTRING ...]

scripts/make_bad_inputs.py writes the catalog (its input files and catalog.json) into a
temporary folder. Every entry (or only those whose name contains one of the given
substrings) is then run in a fresh copy of that folder (symlinks, hard links and named
pipes kept as they are), with the copy as the working directory, so that the paths on
the command line are exactly the ones the message must name. Checks, for every entry:

  * exit code 2 (not a crash, not 0, not 1), within TIMEOUT seconds;
  * stdout is empty;
  * stderr is valid UTF-8 (strictly decoded, as a CI script reading it as text does) and
    exactly one line: it ends with a single '\\n' and holds no other '\\n', no '\\r' and
    no other control character (C0, DEL, or C1 U+0080..U+009F), and it starts with
    "bnorm: error: ";
  * the message contains the entry's "file" (when not null) and every "expect" substring;
  * none of the entry's "outputs" exists afterwards;
  * no temporary file (a name starting with '.' and holding '.tmp-') anywhere in the folder;
  * the folder is otherwise unchanged: every entry that existed before has the same kind
    and bytes (a snapshot before and after), and nothing was created.

Prints the catalog size, `PASS name` or `FAIL name: reasons (command)` per entry, the
runtime, and the final line `N passed, M failed`. Exits with 1 if any entry failed.
"""

import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATOR = os.path.join(HERE, "..", "..", "scripts", "make_bad_inputs.py")
TIMEOUT = 60
MIN_CASES = 45


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def copy_tree(src, dst):
    """Copies src into a new folder dst, keeping symlinks as symlinks, hard links between
    files as hard links, and named pipes as named pipes (shutil.copytree does not)."""
    os.mkdir(dst)
    inodes = {}
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        for name in dirs + files:
            s = os.path.join(root, name)
            d = os.path.normpath(os.path.join(dst, rel, name))
            st = os.lstat(s)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(s), d)
            elif stat.S_ISDIR(st.st_mode):
                os.mkdir(d)
            elif stat.S_ISFIFO(st.st_mode):
                os.mkfifo(d)
            elif (st.st_dev, st.st_ino) in inodes:
                os.link(inodes[(st.st_dev, st.st_ino)], d)
            else:
                shutil.copyfile(s, d)
                inodes[(st.st_dev, st.st_ino)] = d


def snapshot(folder):
    """Every entry under folder (hidden ones too): its kind and content. Named pipes are
    not opened; hard links are recorded by their link count."""
    snap = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, folder)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                snap[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                snap[rel] = ("dir",)
            elif stat.S_ISFIFO(st.st_mode):
                snap[rel] = ("fifo",)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    snap[rel] = ("file", st.st_nlink, f.read())
            else:
                snap[rel] = ("other", st.st_mode)
    return snap


def temporary_files(folder):
    found = []
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            if name.startswith(".") and ".tmp-" in name:
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(found)


def shell_word(a):
    """One argument as a shell word, on one line: $'...' when it holds control characters
    or bytes that are not UTF-8 (held as os.fsdecode does, surrogates U+DC80..U+DCFF)."""
    if re.search("[\x00-\x1f\x7f\udc80-\udcff]", a):
        return "$'" + "".join(chr(b) if 32 <= b < 127 and chr(b) not in "'\\" else "\\x%02x" % b
                              for b in os.fsencode(a)) + "'"
    return shlex.quote(a)


def command_line(args):
    return "bnorm " + " ".join(shell_word(a) for a in args)


CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def check_entry(bnorm, folder, entry):
    """Runs one catalog entry in folder. Returns the list of what is wrong (empty: passed)."""
    bad = []
    for o in entry["outputs"]:
        if os.path.lexists(os.path.join(folder, o)):
            return ["catalog error: output %r exists before the run" % o]
    before = snapshot(folder)
    try:
        p = subprocess.run([bnorm] + entry["args"], cwd=folder, capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return ["no exit within %d s (killed)" % TIMEOUT]
    rc, out, err = p.returncode, p.stdout, p.stderr
    after = snapshot(folder)
    text = err.decode("utf-8", "replace")
    try:
        err.decode("utf-8")  # strictly, as subprocess.run(..., text=True) in a CI script would
    except UnicodeDecodeError as e:
        bad.append("stderr is not valid UTF-8 (%s)" % e)

    if rc < 0:
        try:
            sig = signal.Signals(-rc).name
        except ValueError:
            sig = "signal %d" % -rc
        bad.append("crashed: killed by %s" % sig)
    elif rc != 2:
        bad.append("exit %d (expected 2)" % rc)
    if out:
        bad.append("stdout is not empty: %r" % out[:200])
    if not err:
        bad.append("stderr is empty")
    else:
        if not err.endswith(b"\n") or err.count(b"\n") != 1:
            bad.append("stderr is not exactly one line (%d newlines)" % err.count(b"\n"))
        if b"\r" in err:
            bad.append("stderr holds a carriage return")
        ctl = sorted(set(CONTROL.findall(text[:-1] if text.endswith("\n") else text)) - {"\n", "\r"})
        if ctl:
            bad.append("stderr holds control characters %s" %
                       ", ".join("U+%04X" % ord(c) for c in ctl))
        if not text.startswith("bnorm: error: "):
            bad.append("stderr does not start with 'bnorm: error: '")
        if entry["file"] is not None and entry["file"] not in text:
            bad.append("the message does not name the file %r" % entry["file"])
        for e in entry["expect"]:
            if e not in text:
                bad.append("the message lacks %r" % e)

    left = [o for o in entry["outputs"] if os.path.lexists(os.path.join(folder, o))]
    if left:
        bad.append("output(s) left behind: %s" % ", ".join(map(repr, left)))
    tmps = temporary_files(folder)
    if tmps:
        bad.append("temporary file(s) left behind: %s" % ", ".join(tmps))
    changed = [k for k in sorted(before) if before[k] != after.get(k)]
    if changed:
        bad.append("pre-existing entries changed or removed: %s" % ", ".join(map(repr, changed)))
    created = [k for k in sorted(after) if k not in before and k not in tmps
               and k not in entry["outputs"]]
    if created:
        bad.append("entries created: %s" % ", ".join(map(repr, created)))
    if bad and err:
        bad.append("stderr %r" % err[:400])
    return bad


def validate_catalog(catalog):
    problems = []
    if len(catalog) < MIN_CASES:
        problems.append("only %d entries (at least %d expected)" % (len(catalog), MIN_CASES))
    names = [e.get("name") for e in catalog]
    if len(set(names)) != len(names):
        problems.append("duplicate names")
    for e in catalog:
        keys = {"name", "why", "args", "file", "expect", "outputs"}
        if set(e) != keys:
            problems.append("%s: keys %s" % (e.get("name"), sorted(e)))
        elif e["file"] is not None and e["file"] not in e["args"]:
            problems.append("%s: file %r is not in args" % (e["name"], e["file"]))
    return problems


# ---------------------------------------------------------------------------
# runner
# ---------------------------------------------------------------------------

def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    bnorm = os.path.abspath(sys.argv[1])
    only = sys.argv[2:]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bnorm-bad-inputs-") as tmp:
        catalog_dir = os.path.join(tmp, "catalog")
        g = subprocess.run([sys.executable, GENERATOR, catalog_dir], capture_output=True,
                           text=True)
        if g.returncode != 0:
            print("FAIL generate: %s exited with %d: %s" % (GENERATOR, g.returncode,
                                                            g.stderr.strip()[-2000:]))
            print("0 passed, 1 failed")
            return 1
        with open(os.path.join(catalog_dir, "catalog.json")) as f:
            catalog = json.load(f)
        print("catalog: %d bad-input cases" % len(catalog))
        passed = failed = 0
        problems = validate_catalog(catalog)
        if problems:
            failed += 1
            print("FAIL catalog: %s" % "; ".join(problems))
        sys.stdout.flush()
        for i, entry in enumerate(catalog):
            if only and not any(s in entry["name"] for s in only):
                continue
            folder = os.path.join(tmp, "run-%03d" % i)
            copy_tree(catalog_dir, folder)
            try:
                bad = check_entry(bnorm, folder, entry)
            except Exception as e:  # a broken entry is a failure, not the end of the run
                bad = ["test error: %s: %s" % (type(e).__name__, e)]
            if bad:
                failed += 1
                print("FAIL %s: %s (%s)" % (entry["name"], "; ".join(bad),
                                            command_line(entry["args"])))
            else:
                passed += 1
                print("PASS %s" % entry["name"])
            sys.stdout.flush()
            shutil.rmtree(folder)
    print("(%.1fs)" % (time.perf_counter() - t0))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
