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
- the completions do not complete what `--dump-cli` says an option's value is: bash is run
  (its completion function, with COMP_WORDS set, in a directory holding a file and a
  subdirectory) for every option with a fixed set of values (all of them offered), a file
  (the file offered) or a directory (only the subdirectory offered), for positional files,
  and for the global options after every subcommand (offered, and their values stepped over);
  for zsh and fish the generated text must hold each value list and file action (their
  behaviour is not run: the check says so);
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


def bash_complete(script, cwd, words):
    """Runs the bash completion |script| for the command line |words| (the last one is being
    completed) in |cwd|; returns the offered words, or None when bash failed."""
    prog = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
            'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; _esession esession "${COMP_WORDS[-1]}" '
            '"${COMP_WORDS[-2]}"; printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "-c", prog, "bash", script] + list(words), cwd=cwd,
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return None
    return [w for w in r.stdout.split("\n") if w]


def check_completion_behaviour(root, src):
    cdir = os.path.abspath(os.path.join(src, "completions"))
    nodes = list(walk(root))
    valued = [(path, o) for path, c in nodes for o in c["options"]
              if o.get("value", "text") != "text"]
    kinds = {o.get("value") for _, o in valued}
    for want in ("choice", "file", "dir"):
        if want not in kinds:
            problem(f"--dump-cli marks no option as taking a {want}")
    if not shutil.which("bash"):
        print("docs_check: bash is not installed: the bash completion is not run")
    else:
        script = os.path.join(cdir, "esession.bash")
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "notes.txt"), "w") as f:
                f.write("x")
            os.mkdir(os.path.join(d, "nsub"))
            for path, o in valued:
                for n in o["names"]:
                    words = ["esession", *path, n]
                    v = o["value"]
                    got = bash_complete(script, d, words + [""] if v == "choice" else
                                        words + ["n"])
                    where = " ".join(words)
                    if got is None:
                        problem(f"completions/esession.bash: '{where} <TAB>': bash failed")
                    elif v == "choice" and sorted(got) != sorted(o["choices"]):
                        problem(f"completions/esession.bash: '{where} <TAB>' offers {got}, "
                                f"not {o['choices']}")
                    elif v == "file" and "notes.txt" not in got:
                        problem(f"completions/esession.bash: '{where} n<TAB>' offers {got}, "
                                "not the file notes.txt")
                    elif v == "dir" and got != ["nsub"]:
                        problem(f"completions/esession.bash: '{where} n<TAB>' offers {got}, "
                                "not only the directory nsub")
            g = [o for o in root["options"]
                 if not {"-h", "--help", "--version"} & set(o["names"])]
            g_dir = next((o for o in g if o.get("value") == "dir"), None)
            for path, cmd in nodes:
                if not path or cmd["subcommands"]:
                    continue
                where = " ".join(("esession",) + path)
                got = bash_complete(script, d, ["esession", *path, "--"]) or []
                for o in g:
                    for n in o["names"]:
                        if n.startswith("--") and n not in got:
                            problem(f"completions/esession.bash: '{where} --<TAB>' lacks the "
                                    f"global option {n}")
                if any(p.get("value") == "file" for p in cmd["positionals"]):
                    got = bash_complete(script, d, ["esession", *path, "n"]) or []
                    if "notes.txt" not in got:
                        problem(f"completions/esession.bash: '{where} n<TAB>' offers {got}, "
                                "not the file notes.txt (a positional file)")
                # A global option's value after the subcommand is stepped over, and completed.
                own = [o for o in cmd["options"] if o.get("value") == "choice"]
                if g_dir and own:
                    words = ["esession", *path, g_dir["names"][-1], "nsub", own[0]["names"][-1], ""]
                    got = bash_complete(script, d, words)
                    if got is None or sorted(got) != sorted(own[0]["choices"]):
                        problem(f"completions/esession.bash: '{' '.join(words)}<TAB>' offers "
                                f"{got}, not {own[0]['choices']}")
                    got = bash_complete(script, d, ["esession", *path, g_dir["names"][-1], "n"])
                    if got != ["nsub"]:
                        problem(f"completions/esession.bash: '{where} {g_dir['names'][-1]} "
                                f"n<TAB>' offers {got}, not the directory nsub")
    # zsh and fish: the generated text.
    try:
        with open(os.path.join(cdir, "_esession"), encoding="utf-8") as f:
            zsh = f.read()
        with open(os.path.join(cdir, "esession.fish"), encoding="utf-8") as f:
            fish = f.read()
    except FileNotFoundError:
        return  # reported by check_completions
    for shell in ("zsh", "fish"):
        if not shutil.which(shell):
            print(f"docs_check: {shell} is not installed: its completion is checked as text only")
    fns = zsh_functions(zsh)
    for path, o in valued:
        where = " ".join(("esession",) + path)
        body = fns.get(zsh_fn(path), "") + ("" if path else zsh.split("_esession() {")[0])
        label = ":" + max(o["names"], key=len).lstrip("-") + ":"
        action = {"file": "_files", "dir": "_files -/",
                  "choice": "(" + " ".join(o.get("choices", [])) + ")"}[o["value"]]
        if label + action + "'" not in body:
            problem(f"completions/_esession: '{where}' {o['names'][-1]} does not complete "
                    f"with {action}")
        flag = "-l " + o["names"][-1][2:]
        line = next((l for l in fish.splitlines()
                     if l.startswith(f"complete -c esession -n \"__esession_at '{' '.join(path)}'\"")
                     and re.search(re.escape(flag) + r"( |$)", l)), "")
        want = {"file": "-r -F", "dir": "__fish_complete_directories",
                "choice": "-x -a '" + " ".join(o.get("choices", [])) + "'"}[o["value"]]
        if want not in line:
            problem(f"completions/esession.fish: '{where}' {o['names'][-1]} does not complete "
                    f"with {want}")


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
        check_completion_behaviour(root, src)
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
