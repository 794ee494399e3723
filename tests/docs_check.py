#!/usr/bin/env python3
"""docs.cli-coverage: the man pages and shell completions document the whole command line.

    tests/docs_check.py ESESSION SOURCE_DIR

Reads the command tree from `ESESSION --dump-cli` and fails (exit 1, one line per problem) if
- a global option is not documented in man/esession.1, or a top-level command is not listed
  there;
- a command has no man/esession-<command>.1, or that page lacks one of its subcommands (an .SS
  heading "key generate ...") or one of the options (every short and long name) of the command
  or its subcommands; an option counts as documented when it appears in the tag line of a .TP
  paragraph;
- a man page exists for no command, or names another version than `esession --version`;
- esession.1 lacks a status keyword that cli/*.cpp emits with ctx.status("KEYWORD", ...);
- completions/esession.bash, _esession or esession.fish lack a subcommand or option (checked
  per command), or do not know which options take a value;
- scripts/gen-completions would write completion files other than the checked-in ones;
- `man --warnings` reports anything for a page (only where man-db and groff are installed),
  or bash/zsh/fish (where installed) reject the syntax of their completion file.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

problems = []


def problem(msg):
    problems.append(msg)


def walk(cmd, path=()):
    yield path, cmd
    for sub in cmd["subcommands"]:
        yield from walk(sub, path + (sub["name"],))


def names(cmd):
    return [n for o in cmd["options"] for n in o["names"]]


def has_word(text, word):
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text) is not None


# --- man pages ---------------------------------------------------------------------------------

ESCAPES = [(r"\-", "-"), (r"\(en", "-"), (r"\(em", "-"), (r"\(aq", "'"), (r"\e", "\\"),
           (r"\&", ""), (r"\%", ""), (r"\ ", " "), (r"\~", " ")]


def plain(line):
    """A roff line as text: no macro name, fonts, quotes or escapes."""
    line = re.sub(r"^\.[A-Za-z]+\s*", "", line)
    line = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", line)
    for esc, rep in ESCAPES:
        line = line.replace(esc, rep)
    return line.replace('"', "")


class ManPage:
    def __init__(self, path):
        self.path = path
        with open(path, encoding="utf-8") as f:
            self.lines = f.read().splitlines()
        self.tags, self.headings = [], []
        for i, line in enumerate(self.lines):
            if line.startswith(".TP") and i + 1 < len(self.lines):
                self.tags.append(plain(self.lines[i + 1]))
            elif line.startswith(".SS"):
                self.headings.append(plain(line))
        self.text = "\n".join(plain(x) for x in self.lines if not x.startswith('.\\"'))
        th = next((x for x in self.lines if x.startswith(".TH")), "")
        m = re.search(r'"esession ([^"]+)"', th)
        self.version = m.group(1) if m else None

    def documents_option(self, name):
        return any(has_word(t, name) for t in self.tags)

    def has_heading(self, words):
        return any(re.match(re.escape(words) + r"(?![\w-])", h.strip()) for h in self.headings)


def check_man(root, src, version):
    mandir = os.path.join(src, "man")
    pages = {}
    for path in sorted(glob.glob(os.path.join(mandir, "*.1"))):
        pages[os.path.basename(path)] = ManPage(path)
    main = pages.get("esession.1")
    if not main:
        problem("man/esession.1 is missing")
        return pages
    for n in names(root):
        if not main.documents_option(n):
            problem(f"man/esession.1: global option {n} is not documented (.TP tag)")
    expected = {"esession.1"}
    for cmd in root["subcommands"]:
        name = cmd["name"]
        if not any(has_word(t, name) for t in main.tags):
            problem(f"man/esession.1: command {name} is not listed (.TP tag)")
        page_name = f"esession-{name}.1"
        expected.add(page_name)
        page = pages.get(page_name)
        if not page:
            problem(f"man/{page_name} is missing")
            continue
        for path, sub in walk(cmd, (name,)):
            if len(path) > 1 and not page.has_heading(" ".join(path)):
                problem(f"man/{page_name}: subcommand '{' '.join(path)}' has no .SS heading")
            for n in names(sub):
                if not page.documents_option(n):
                    problem(f"man/{page_name}: option {n} of '{' '.join(path)}' "
                            "is not documented (.TP tag)")
            for p in sub["positionals"]:
                if not has_word(page.text, p["name"]):
                    problem(f"man/{page_name}: argument {p['name']} of '{' '.join(path)}' "
                            "is not mentioned")
    for stale in sorted(set(pages) - expected):
        problem(f"man/{stale}: no such command in esession --dump-cli")
    for name, page in pages.items():
        if page.version != version:
            problem(f"man/{name}: .TH says esession {page.version}, the binary is {version}")
    # Status keywords the code emits must be in esession(1)'s STATUS LINES.
    keywords = set()
    for f in glob.glob(os.path.join(src, "cli", "*.cpp")):
        with open(f, encoding="utf-8") as fh:
            keywords |= set(re.findall(r'status\(\s*"([A-Z_]+)"', fh.read()))
    for k in sorted(keywords):
        if not any(t.split()[:1] == [k] for t in main.tags):
            problem(f"man/esession.1: status keyword {k} is not documented (.TP tag)")
    return pages


def lint_man(pages):
    if not (shutil.which("man") and shutil.which("groff")):
        print("docs_check: man or groff not installed; man pages not linted")
        return
    for name, page in pages.items():
        r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", page.path],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0 or r.stderr.strip():
            problem(f"man/{name}: man --warnings: {r.stderr.strip() or 'exit %d' % r.returncode}")


# --- completions -------------------------------------------------------------------------------


def case_table(text, fn):
    """bash: {path: [words]} from a `fn() { case $1 in 'PATH') echo 'WORDS' ;; ... }`."""
    m = re.search(r"^" + re.escape(fn) + r"\(\) \{\n(.*?)^\}", text, re.S | re.M)
    if not m:
        return None
    return {p: w.split() for p, w in re.findall(r"^\s+'([^']*)'\) echo '([^']*)' ;;$",
                                                m.group(1), re.M)}


def switch_table(text, fn):
    """fish: {path: [words]} from `function fn; switch "$argv"; case 'PATH'; printf ... WORDS`."""
    m = re.search(r"^function " + re.escape(fn) + r"\n(.*?)^end", text, re.S | re.M)
    if not m:
        return None
    return {p: w.split() for p, w in re.findall(r"^\s+case '([^']*)'\n\s+printf '%s\\n' (.*)$",
                                                m.group(1), re.M)}


def zsh_functions(text):
    return dict(re.findall(r"^(_esession\w*)\(\) \{\n(.*?)^\}", text, re.S | re.M))


def zsh_fn(path):
    return "_esession" + "".join("__" + p.replace("-", "_") for p in path)


def check_completions(root, src):
    cdir = os.path.join(src, "completions")
    files = {}
    for name in ("esession.bash", "_esession", "esession.fish"):
        try:
            with open(os.path.join(cdir, name), encoding="utf-8") as f:
                files[name] = f.read()
        except FileNotFoundError:
            problem(f"completions/{name} is missing")
    nodes = list(walk(root))

    if "esession.bash" in files:
        text = files["esession.bash"]
        tables = {fn: case_table(text, fn) or {}
                  for fn in ("_esession_cmds", "_esession_opts", "_esession_valued")}
        for path, cmd in nodes:
            key, where = " ".join(path), " ".join(("esession",) + path)
            for s in cmd["subcommands"]:
                if s["name"] not in tables["_esession_cmds"].get(key, []):
                    problem(f"completions/esession.bash: '{where}' lacks subcommand {s['name']}")
            for o in cmd["options"]:
                for n in o["names"]:
                    if n not in tables["_esession_opts"].get(key, []):
                        problem(f"completions/esession.bash: '{where}' lacks option {n}")
                    if o["takes_value"] and n not in tables["_esession_valued"].get(key, []):
                        problem(f"completions/esession.bash: '{where}' {n} takes a value")

    if "_esession" in files:
        fns = zsh_functions(files["_esession"])
        for path, cmd in nodes:
            where, fn = " ".join(("esession",) + path), zsh_fn(path)
            body = fns.get(fn)
            if body is None:
                problem(f"completions/_esession: no function {fn} for '{where}'")
                continue
            for s in cmd["subcommands"]:
                if not re.search(r"^\s+'" + re.escape(s["name"]) + ":", body, re.M) or \
                        not re.search(r"^\s+" + re.escape(s["name"]) + r"\) " +
                                      re.escape(zsh_fn(path + (s["name"],))), body, re.M):
                    problem(f"completions/_esession: '{where}' lacks subcommand {s['name']}")
            for o in cmd["options"]:
                for n in o["names"]:
                    if not has_word(body, n):
                        problem(f"completions/_esession: '{where}' lacks option {n}")
                    elif o["takes_value"] and n.startswith("--") and \
                            not re.search(re.escape(n) + r"=[\[,}]", body):  # also {-o,--output=}
                        problem(f"completions/_esession: '{where}' {n} takes a value")

    if "esession.fish" in files:
        text = files["esession.fish"]
        lines = {}
        for p, rest in re.findall(r"^complete -c esession -n \"__esession_at '([^']*)'\" (.*)$",
                                  text, re.M):
            lines.setdefault(p, []).append(rest)
        cmds = switch_table(text, "__esession_cmds") or {}
        valued = switch_table(text, "__esession_valued") or {}
        for path, cmd in nodes:
            key, where = " ".join(path), " ".join(("esession",) + path)
            here = lines.get(key, [])
            for s in cmd["subcommands"]:
                if not any(r.startswith(f"-a {s['name']} ") for r in here) or \
                        s["name"] not in cmds.get(key, []):
                    problem(f"completions/esession.fish: '{where}' lacks subcommand {s['name']}")
            for o in cmd["options"]:
                for n in o["names"]:
                    flag = f"-l {n[2:]}" if n.startswith("--") else \
                        (f"-s {n[1:]}" if len(n) == 2 else f"-o {n[1:]}")
                    if not any(re.search(r"(^| )" + re.escape(flag) + r"( |$)", r) for r in here):
                        problem(f"completions/esession.fish: '{where}' lacks option {n}")
                    if o["takes_value"] and n not in valued.get(key, []):
                        problem(f"completions/esession.fish: '{where}' {n} takes a value")

    # Syntax, where the shells are installed.
    for name, shell in (("esession.bash", ["bash", "-n"]), ("_esession", ["zsh", "-n"]),
                        ("esession.fish", ["fish", "--no-execute"])):
        if name in files and shutil.which(shell[0]):
            r = subprocess.run(shell + [os.path.join(cdir, name)], capture_output=True, text=True)
            if r.returncode != 0:
                problem(f"completions/{name}: {shell[0]} rejects it: {r.stderr.strip()}")


def check_generated(dump_path, src):
    gen = os.path.join(src, "scripts", "gen-completions")
    r = subprocess.run([sys.executable, gen, "--json", dump_path, "--check",
                        "-o", os.path.join(src, "completions")], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        problem("completions/ differ from what scripts/gen-completions makes of "
                "`esession --dump-cli`: run scripts/gen-completions path/to/esession")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: docs_check.py ESESSION SOURCE_DIR")
    esession, src = sys.argv[1], sys.argv[2]
    dump = subprocess.run([esession, "--dump-cli"], check=True, capture_output=True,
                          text=True).stdout
    root = json.loads(dump)
    version = subprocess.run([esession, "--version"], check=True, capture_output=True,
                             text=True).stdout.split()[-1]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(dump)
    try:
        pages = check_man(root, src, version)
        lint_man(pages)
        check_completions(root, src)
        check_generated(f.name, src)
    finally:
        os.unlink(f.name)
    for p in problems:
        print("docs_check: " + p)
    n_opts = sum(len(names(c)) for _, c in walk(root))
    n_cmds = sum(1 for _ in walk(root)) - 1
    if problems:
        print(f"docs_check: {len(problems)} problem(s)")
        return 1
    print(f"docs_check: {n_cmds} commands and {n_opts} option names documented and completed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
