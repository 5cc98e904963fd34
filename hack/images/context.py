#!/usr/bin/env python3
"""Build contexts of the stressmix images, as Docker (BuildKit) and buildah see them.

  context.py files DOCKERFILE          the files of DOCKERFILE's context (repo root, filtered by
                                       DOCKERFILE.dockerignore), one per line
  context.py tag DOCKERFILE...         <workspace version>-<12 hex>: a digest of the Dockerfiles,
                                       their ignore files and every file of their contexts
  context.py bases DOCKERFILE          the external base images of its FROM lines (ARGs resolved)
  context.py arg DOCKERFILE NAME       the default value of a global ARG
  context.py check RUNTIME BUILDER     drift check: each context still holds what its build needs

The ignore-file semantics are moby's patternmatcher (which BuildKit and buildah both use): patterns
are cleaned paths matched in order, the last match wins, `!` re-includes, `**` spans directories, and
a pattern that matches a parent directory matches everything below it.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def fail(msg):
    print(f"[images] context: {msg}", file=sys.stderr)
    sys.exit(1)


def compile_pattern(pat):
    rx, i = "^", 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**", i):
            i += 2
            if i < len(pat) and pat[i] == "/":
                i += 1
            rx += ".*" if i >= len(pat) else "(.*/)?"
            continue
        if c == "*":
            rx += "[^/]*"
        elif c == "?":
            rx += "[^/]"
        elif c == "\\" and i + 1 < len(pat):
            i += 1
            rx += re.escape(pat[i])
        else:
            rx += re.escape(c)
        i += 1
    return re.compile(rx + "$")


def read_ignore(dockerfile):
    path = os.path.join(ROOT, dockerfile + ".dockerignore")
    if not os.path.exists(path):
        path = os.path.join(ROOT, ".dockerignore")
    pats = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                neg = line.startswith("!")
                if neg:
                    line = line[1:].strip()
                line = os.path.normpath(line).lstrip("/") or "."
                pats.append((neg, line, compile_pattern(line)))
    return pats


def excluded(pats, rel):
    """moby's MatchesOrParentMatches: True when rel is left out of the context."""
    parts = rel.split("/")
    parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
    out = False
    for neg, _, rx in pats:
        if neg != out:
            continue
        if rx.match(rel) or any(rx.match(p) for p in parents):
            out = not neg
    return out


def context_files(dockerfile):
    pats = read_ignore(dockerfile)
    # A directory can be pruned only if no `!` pattern could re-include something below it.
    reincludes = [p for neg, p, _ in pats if neg]

    def may_reinclude(d):
        for p in reincludes:
            lit = re.split(r"[*?\[\\]", p, maxsplit=1)[0]
            if lit.startswith(d + "/") or d.startswith(lit.rstrip("/")) or lit == "":
                return True
        return False

    files = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        reldir = os.path.relpath(dirpath, ROOT)
        reldir = "" if reldir == "." else reldir + "/"
        keep = []
        for d in sorted(dirnames):
            rel = reldir + d
            if os.path.islink(os.path.join(dirpath, d)):
                filenames.append(d)
            elif not excluded(pats, rel) or may_reinclude(rel):
                keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            rel = reldir + f
            if not excluded(pats, rel):
                files.append(rel)
    return sorted(files)


def workspace_version():
    with open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.M | re.S)
    if not m:
        fail("no [workspace.package] version in Cargo.toml")
    return m.group(1)


def content_tag(dockerfiles):
    h = hashlib.sha256()

    def add(rel):
        p = os.path.join(ROOT, rel)
        h.update(rel.encode() + b"\0")
        if os.path.islink(p):
            h.update(b"link\0" + os.readlink(p).encode())
        else:
            h.update(b"x\0" if os.access(p, os.X_OK) else b"-\0")
            with open(p, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())

    for df in dockerfiles:
        add(df)
        ign = df + ".dockerignore"
        if os.path.exists(os.path.join(ROOT, ign)):
            add(ign)
        for rel in context_files(df):
            add(rel)
    return f"{workspace_version()}-{h.hexdigest()[:12]}"


def instructions(dockerfile):
    """(KEYWORD, argument text) per instruction, continuation lines joined."""
    with open(os.path.join(ROOT, dockerfile), encoding="utf-8") as f:
        lines = f.read().splitlines()
    out, cur = [], ""
    for line in lines:
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        kw, _, rest = cur.partition(" ")
        out.append((kw.upper(), rest.strip()))
        cur = ""
    return out


def global_args(dockerfile):
    args = {}
    for kw, rest in instructions(dockerfile):
        if kw == "FROM":
            break
        if kw == "ARG":
            name, _, val = rest.partition("=")
            args[name.strip()] = val.strip().strip('"')
    return args


def bases(dockerfile):
    args, stages, out = global_args(dockerfile), set(), []
    for kw, rest in instructions(dockerfile):
        if kw != "FROM":
            continue
        words = [w for w in rest.split() if not w.startswith("--")]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), words[0])
        if len(words) >= 3 and words[1].lower() == "as":
            stages.add(words[2])
        if image not in stages and image != "scratch" and image not in out:
            out.append(image)
    return out


def copies(dockerfile):
    """(sources, destination) of every COPY/ADD that reads the build context."""
    out = []
    for kw, rest in instructions(dockerfile):
        if kw not in ("COPY", "ADD"):
            continue
        words = rest.split()
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        out.append((words[:-1], words[-1]))
    return out


def entrypoint(dockerfile):
    ep = None
    for kw, rest in instructions(dockerfile):
        if kw == "ENTRYPOINT":
            m = re.match(r'\[\s*"([^"]+)"', rest)
            ep = m.group(1) if m else rest.split()[0]
    return ep


def check_copies(dockerfile, files):
    """Every COPY source must match something in the context; returns the problems."""
    problems = []
    for srcs, _ in copies(dockerfile):
        for s in srcs:
            s = os.path.normpath(s).lstrip("/")
            if s == ".":
                ok = bool(files)
            else:
                rx = compile_pattern(s)
                ok = any(rx.match(f) or f.startswith(s + "/") for f in files)
            if not ok:
                problems.append(f"{dockerfile}: COPY source {s!r} is not in the build context")
    return problems


def check_runtime(dockerfile):
    files = context_files(dockerfile)
    problems = check_copies(dockerfile, files)
    # Cargo must load the whole workspace from exactly the context's files: a member left out
    # fails every `cargo build` in the image ("failed to load manifest for workspace member").
    with tempfile.TemporaryDirectory(prefix="stressmix-context-") as tmp:
        for rel in files:
            dst = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, rel), dst, follow_symlinks=False)
        env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(tmp, "target"))
        r = subprocess.run(
            ["cargo", "metadata", "--locked", "--offline", "--no-deps", "--format-version", "1"],
            cwd=tmp, env=env, capture_output=True, text=True, check=False,
        )
        if r.returncode != 0:
            problems.append(f"{dockerfile}: cargo cannot load the workspace from its build context:\n"
                            + r.stderr.strip())
    return problems, len(files)


def check_builder(dockerfile):
    files = context_files(dockerfile)
    problems = check_copies(dockerfile, files)
    # The module's sources: what kmod/'s Makefile builds (tracked files directly in kmod/).
    tracked = subprocess.run(["git", "ls-files", "kmod"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    for rel in tracked:
        if rel.count("/") == 1 and (rel.endswith((".c", ".h")) or rel in ("kmod/Makefile", "kmod/Kbuild")):
            if rel not in files:
                problems.append(f"{dockerfile}: module source {rel} is not in the build context")
    # The entrypoint must be a file the Dockerfile copies from the context.
    ep = entrypoint(dockerfile)
    dests = []
    for srcs, dst in copies(dockerfile):
        dests += [dst] + [os.path.join(dst, os.path.basename(s)) for s in srcs if dst.endswith("/")]
    if not ep:
        problems.append(f"{dockerfile}: no ENTRYPOINT")
    elif ep not in dests:
        problems.append(f"{dockerfile}: ENTRYPOINT {ep} is not copied from the build context")
    return problems, len(files)


def main(argv):
    if len(argv) >= 2 and argv[0] == "files":
        print("\n".join(context_files(argv[1])))
    elif len(argv) >= 2 and argv[0] == "tag":
        print(content_tag(argv[1:]))
    elif len(argv) == 2 and argv[0] == "bases":
        print("\n".join(bases(argv[1])))
    elif len(argv) == 3 and argv[0] == "arg":
        print(global_args(argv[1]).get(argv[2], ""))
    elif len(argv) == 3 and argv[0] == "check":
        problems = []
        for name, fn in ((argv[1], check_runtime), (argv[2], check_builder)):
            p, n = fn(name)
            problems += p
            if not p:
                print(f"[images] context of {name}: {n} files, holds what its build needs", file=sys.stderr)
        if problems:
            for p in problems:
                print(f"[images] context drift: {p}", file=sys.stderr)
            return 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
