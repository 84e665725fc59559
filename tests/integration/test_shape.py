"""The shape of the source tree: short files, short functions, a head comment.

Issue 16 asks for "no source file over 1,000 lines, no function over 60
lines outside generated tables", and the house style asks every file to open
with an essay saying what it is and why. This test keeps both true for every
tracked source file under src/ (it reads the files; no daemon is needed):

- a .c or .h file over MAX_FILE_LINES lines fails, named with its length;
- a function over MAX_FUNC_LINES lines fails, named with its file, name and
  length. A function is a line starting with `{` after a declarator, up to
  the next line starting with `}`, both lines counted (the project's
  .clang-format puts a function's braces in column 0, BreakBeforeBraces:
  Linux). A line starting with `{` whose previous line ends with `=` opens a
  brace-initialised table, not a function, and is skipped;
- a .c or .h file whose first non-blank text is not a /* ... */ comment
  fails.

An exception belongs in ALLOWED, with a comment saying which generator wrote
the table; there is none today.
"""
import os
import re
import subprocess

import pytest

from conftest import ROOT

MAX_FILE_LINES = 1000
MAX_FUNC_LINES = 60

# (file, function) -> why it may be long. Only generated tables belong here.
ALLOWED = {}

def src_files(suffixes=(".c",)):
    p = subprocess.run(["git", "-C", ROOT, "ls-files", "src"], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("not a git checkout")
    files = sorted(f for f in p.stdout.splitlines()
                   if f.endswith(suffixes) and os.path.isfile(os.path.join(ROOT, f)))
    assert files, "git ls-files src found no file ending in " + " or ".join(suffixes)
    return files


def read_lines(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as fp:
        return fp.read().split("\n")


def function_name(lines, brace):
    """The declared name before the `{` on line index `brace`: the first
    identifier followed by `(` in the declarator (which starts after the
    previous blank line, `;`, `}`, comment end or preprocessor line), once
    any __attribute__((...)) is dropped."""
    decl = []
    i = brace - 1
    while i >= 0:
        s = lines[i].rstrip()
        if s == "" or s.endswith(";") or s.endswith("}") or s.endswith("*/") or \
                s.startswith("#"):
            break
        decl.insert(0, s)
        i -= 1
    text = re.sub(r"__attribute__\s*\(\(.*?\)\)", "", " ".join(decl))
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", text)
    return m.group(1) if m else "?"


def functions(lines):
    """(name, first line number, length) of every function body in lines."""
    out = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("{") and not (i > 0 and lines[i - 1].rstrip().endswith("=")):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("}"):
                j += 1
            out.append((function_name(lines, i), i + 1, j - i + 1))
            i = j + 1
            continue
        i += 1
    return out


def test_counter_sees_functions():
    """The counter itself: a known body is measured, a table skipped."""
    text = ("static int\nf(int a,\n  int b)\n{\n\treturn a;\n}\n"
            "static const int t[] =\n{\n1,\n};\n"
            "int\ng(void)\n{\n\tif (1) {\n\t}\n\treturn 0;\n}\n"
            "static void __attribute__((noreturn)) u(int c)\n{\n\texit(c);\n}\n")
    assert functions(text.split("\n")) == [("f", 4, 3), ("g", 13, 5), ("u", 19, 3)]


def test_no_file_over_limit():
    bad = []
    for rel in src_files((".c", ".h")):
        lines = read_lines(rel)
        n = len(lines) - (lines[-1] == "")
        if n > MAX_FILE_LINES:
            bad.append(f"{rel}: {n} lines (max {MAX_FILE_LINES})")
    assert not bad, "files too long:\n" + "\n".join(bad)


def test_no_function_over_limit():
    bad = []
    for rel in src_files():
        for name, line, n in functions(read_lines(rel)):
            if n <= MAX_FUNC_LINES or (rel, name) in ALLOWED:
                continue
            bad.append(f"{rel}:{line}: {name} is {n} lines (max {MAX_FUNC_LINES})")
    assert not bad, "functions too long:\n" + "\n".join(bad)


def test_every_file_opens_with_head_comment():
    bad = []
    for rel in src_files((".c", ".h")):
        text = "\n".join(read_lines(rel)).lstrip()
        if not (text.startswith("/*") and "*/" in text):
            bad.append(rel)
    assert not bad, "no head comment (/* ... */ first):\n" + "\n".join(bad)
