#!/usr/bin/env python3
"""Checks that the documentation does not point at things that do not exist.

1. Every code name in docs/derivation.md (a backticked identifier such as `name`,
   `name()`, `name(T, tile)`, `name<T>` or `Type::member`) must appear as a whole word
   in some source file under lib/ or app/ (or CMakeLists.txt, for target
   names). Single letters (`a`, `B`: math) and backticked
   text that is not an identifier (formulas, shapes, options) are not checked; a few
   names that are not code (golden case names) are allowed explicitly.
2. Every backticked repository path in docs/derivation.md (`lib/...`, `tests/...`,
   `scripts/...`) and every relative Markdown link in README.md and docs/*.md must exist.

Usage: test_docs.py REPO_ROOT. Prints what is missing and exits 1, or prints a summary.
Standard library only.
"""
import pathlib
import re
import sys

# Backticked names in docs/derivation.md that are not code: golden case names.
ALLOWED = {"dy_cancel"}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
# name, Type::member, optional template arguments <...> and a call (...) at the end
CODE_NAME = re.compile(rf"^({IDENT}(?:::{IDENT})*)(?:<[^<>`]*>)?(?:\([^()`]*\))?$")
PATH_PREFIXES = ("lib/", "app/", "tests/", "scripts/", "bench/", "docs/", "data/")
SOURCE_SUFFIXES = {".cpp", ".hpp", ".h", ".cc", ".txt", ".cmake", ".in", ".py"}
WORD = re.compile(IDENT)


def code_words(root):
    """Every identifier in the sources under lib/ and app/, and in CMakeLists.txt (targets)."""
    words = set()
    cmake = root / "CMakeLists.txt"
    if cmake.is_file():
        words.update(WORD.findall(cmake.read_text(encoding="utf-8", errors="replace")))
    for top in ("lib", "app"):
        for f in (root / top).rglob("*"):
            if f.is_file() and f.suffix in SOURCE_SUFFIXES:
                words.update(WORD.findall(f.read_text(encoding="utf-8", errors="replace")))
    return words


def backticked(text):
    # drop fenced code blocks, then take `...` spans
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


def check_names(root, words):
    checked, missing = set(), []
    for span in backticked((root / "docs" / "derivation.md").read_text(encoding="utf-8")):
        m = CODE_NAME.match(span.strip())
        if not m:
            continue
        name = m.group(1)
        if len(name) < 2 or name in ALLOWED or name in checked:
            continue
        checked.add(name)
        if not all(part in words for part in name.split("::")):
            missing.append(name)
    return sorted(checked), missing


def check_paths(root):
    checked, missing = 0, []
    derivation = root / "docs" / "derivation.md"
    for span in backticked(derivation.read_text(encoding="utf-8")):
        if span.startswith(PATH_PREFIXES) and " " not in span:
            checked += 1
            if not (root / span).exists():
                missing.append(f"docs/derivation.md: `{span}`")
    docs = [root / "README.md"] + sorted((root / "docs").glob("*.md"))
    for doc in docs:
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            path = target.split("#", 1)[0]
            checked += 1
            if not (doc.parent / path).exists():
                missing.append(f"{doc.relative_to(root)}: link ({target})")
    return checked, missing


def main():
    if len(sys.argv) != 2:
        print("usage: test_docs.py REPO_ROOT", file=sys.stderr)
        return 2
    root = pathlib.Path(sys.argv[1]).resolve()
    names, missing_names = check_names(root, code_words(root))
    paths_checked, missing_paths = check_paths(root)
    for n in missing_names:
        print(f"docs/derivation.md names `{n}`, which is not a whole word anywhere under lib/, app/ or in CMakeLists.txt")
    for p in missing_paths:
        print(f"missing file: {p}")
    print(f"docs names: {len(names)} checked, {len(missing_names)} missing; "
          f"links and paths: {paths_checked} checked, {len(missing_paths)} missing")
    return 1 if missing_names or missing_paths else 0


if __name__ == "__main__":
    sys.exit(main())
