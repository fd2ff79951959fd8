"""DESIGN §5 (README, a newcomer's path): every command in the README's code blocks is run by a test.

tools/check_readme.py reads the blocks; here each shell block runs in order
in a session of its own (HOME in a scratch directory, the venv's tools on
PATH):
- `penctl ...` runs against a simulated pen (firmware in MicroPython, real
  time), reached through `--port` (whatever port the README names is replaced
  by the pen's pty) or $PENCTL_PORT; or against the pen a `pensim serve`
  earlier in the block started;
- `pensim serve` must print `PORT <path>` first and stop cleanly on SIGTERM;
- `make T`: cheap targets run; `make demo` runs what it calls (`make -n`);
  `make test` (which runs this test), `make clean`, `make flash` (needs a
  board) and `make bench` (tested on its own) are checked: the target exists
  and every program it calls exists (a penctl subcommand answers --help);
- a command the README marks with `# ... exit N` must end with code N.
Python blocks run as scripts; the test_* functions they define are called.
The timeouts below only stop a hang; no result depends on wall-clock time.
"""

from __future__ import annotations

import importlib.util
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import check_readme as cr  # noqa: E402

from sim import SimulatedPen  # noqa: E402

VENV_BIN = Path(sys.executable).parent
BLOCKS = cr.readme_blocks()
PORT_ARG = re.compile(r"(--port[= ])(\S+)")
PORT_ENV = re.compile(r"\bPENCTL_PORT=\S*")
STREAMING = {"monitor", "log"}  # penctl commands that may run until stopped


class Session:
    """What the commands of one README block share: environment and pen."""

    def __init__(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        home.mkdir()
        self.cwd = tmp_path
        self.env = dict(os.environ, HOME=str(home), PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
        self.env.pop("PENCTL_PORT", None)
        self.pen: SimulatedPen | None = None
        self.pensim: subprocess.Popen[str] | None = None
        self.port = ""

    def pen_port(self) -> str:
        if not self.port:
            self.pen = SimulatedPen(runtime="micropython", speed=1.0)
            self.pen.start()
            self.port = self.pen.port
        return self.port

    def close(self) -> None:
        if self.pensim is not None:
            self.pensim.send_signal(signal.SIGTERM)
            try:
                rc = self.pensim.wait(timeout=30)
            finally:
                if self.pensim.poll() is None:
                    self.pensim.kill()
            assert rc == 0, "pensim serve did not stop cleanly on SIGTERM"
        if self.pen is not None:
            self.pen.close()

    def sh(self, cmd: str, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", cmd],
            cwd=cwd or ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


def _fail(c: cr.Command, r: subprocess.CompletedProcess[str] | None, why: str) -> None:
    out = "" if r is None else f"\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
    pytest.fail(f"README line {c.line}: `{c.text}`: {why}{out}")


def _expect(c: cr.Command, r: subprocess.CompletedProcess[str]) -> None:
    if r.returncode != c.expect_exit:
        _fail(c, r, f"exit code {r.returncode}, expected {c.expect_exit}")


def run_penctl(s: Session, c: cr.Command) -> None:
    port = s.pen_port()
    text = PORT_ENV.sub("PENCTL_PORT=" + shlex.quote(port), c.text)
    text = PORT_ARG.sub(lambda m: m.group(1) + shlex.quote(port), text)
    env_port = dict(s.env, PENCTL_PORT=port)
    words = c.words
    if STREAMING & set(words):
        proc = subprocess.Popen(
            ["bash", "-c", "exec " + text],
            env=env_port,
            cwd=s.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # ran until stopped, as a stream does
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
            if not out.strip():
                _fail(c, subprocess.CompletedProcess(c.argv, -1, out, err), "streamed nothing")
            return
        _expect(c, subprocess.CompletedProcess(c.argv, proc.returncode, out, err))
        return
    s.env, saved = env_port, s.env
    try:
        r = s.sh(text, timeout=60, cwd=s.cwd)  # files the README writes land in a temp folder
    finally:
        s.env = saved
    _expect(c, r)


def run_pensim(s: Session, c: cr.Command) -> None:
    words = c.words
    if "serve" not in words:
        _expect(c, s.sh(c.text, timeout=60))
        return
    assert s.pensim is None, f"README line {c.line}: a second pensim serve in one block"
    text = c.text.rstrip("& ")
    s.pensim = subprocess.Popen(
        ["bash", "-c", "exec " + text],
        cwd=ROOT,
        env=s.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert s.pensim.stdout is not None
    ready, _, _ = select.select([s.pensim.stdout], [], [], 60)
    first = s.pensim.stdout.readline() if ready else ""
    if not first.startswith("PORT /"):
        _fail(c, None, f"first line {first!r}, expected 'PORT <path>'")
    s.port = first.split(None, 1)[1].strip()


def _recipe(target_args: list[str], s: Session) -> list[str]:
    r = s.sh("make --no-print-directory -n " + " ".join(map(shlex.quote, target_args)), timeout=60)
    assert r.returncode == 0, r.stderr
    # a recipe line continued with a backslash is one shell command
    lines = [ln for ln in r.stdout.replace("\\\n", " ").splitlines() if ln.strip()]
    # drop the venv set-up that a stale stamp would add before the target's own recipe
    last_setup = max((i for i, ln in enumerate(lines) if ln.startswith("touch .venv/")), default=-1)
    return lines[last_setup + 1 :]


def _check_calls(c: cr.Command, recipe: list[str], s: Session) -> None:
    """Every program a recipe line calls exists; python -m modules import; penctl subcommands answer --help."""
    for line in recipe:
        words = shlex.split(line)
        prog = words[0]
        if (
            prog in ("if", "test", "[", "{", "command")
            or shutil.which(prog, path=s.env["PATH"])
            or (ROOT / prog).exists()
        ):
            pass
        else:
            _fail(c, None, f"`make` calls {prog}, which does not exist")
        if Path(prog).name.startswith("python") and words[1:2] == ["-m"]:
            assert importlib.util.find_spec(words[2]) is not None, f"README line {c.line}: no module {words[2]}"
        elif Path(prog).name.startswith("python") and len(words) > 1 and words[1].endswith(".py"):
            assert (ROOT / words[1]).exists(), f"README line {c.line}: no script {words[1]}"
        if Path(prog).name == "penctl":
            sub = [w for w in words[1:] if not w.startswith("-") and w not in _option_values(words)]
            if sub:
                r = s.sh(f"{shlex.quote(prog)} {shlex.quote(sub[0])} --help", timeout=30)
                if r.returncode != 0:
                    _fail(c, r, f"`make` calls `penctl {sub[0]}`, which penctl does not know")


def _option_values(words: list[str]) -> set[str]:
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("--") and "=" not in w}


def run_make(s: Session, c: cr.Command) -> None:
    words = c.words
    args = words[1:]
    targets = [w for w in args if not w.startswith("-") and "=" not in w] or ["all"]
    for target in targets:
        how = cr.MAKE_TARGETS[target]
        if how == "run":
            r = s.sh("make --no-print-directory " + target, timeout=300)
            _expect(c, r)
        elif how == "recipe":
            recipe = _recipe([target, *[w for w in args if "=" in w]], s)
            assert recipe, f"README line {c.line}: make {target} runs nothing"
            r = s.sh("set -e\n" + "\n".join(recipe), timeout=300)
            _expect(c, r)
        else:
            recipe = _recipe([target, *[w for w in args if "=" in w]], s)
            assert recipe, f"README line {c.line}: make {target} runs nothing"
            _check_calls(c, recipe, s)
            if target == "test":
                assert any("pytest" in ln for ln in recipe), recipe
            if target == "flash":
                # without a PORT it must refuse with a usage line, touching nothing
                r = s.sh("make --no-print-directory flash PORT=", timeout=60)
                assert r.returncode != 0 and "usage" in (r.stdout + r.stderr).lower()


def run_pytest(s: Session, c: cr.Command) -> None:
    words = c.words
    if not any(w.endswith(".py") or "::" in w for w in words):
        return  # the whole suite: that is what is running this test
    _expect(c, s.sh(c.text, timeout=300))


def run_setup(s: Session, c: cr.Command) -> None:
    words = c.argv
    if words[:1] == ["export"] or (words and cr.ENV_ASSIGN.match(words[0]) and len(words) == 1):
        for w in words[1:] if words[0] == "export" else words:
            key, _, value = w.partition("=")
            s.env[key] = s.pen_port() if key == "PENCTL_PORT" else value
    # cd, git clone, source .venv/bin/activate: the test already runs in the
    # clone with the venv's programs on PATH


RUNNERS = {
    "penctl": run_penctl,
    "pensim": run_pensim,
    "make": run_make,
    "pytest": run_pytest,
    "setup": run_setup,
}


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    s = Session(tmp_path)
    try:
        yield s
    finally:
        s.close()


def test_readme_has_the_two_commands_and_only_testable_ones() -> None:
    shell = [c.text for b in BLOCKS for c in b.commands]
    assert "make demo" in shell and "make test" in shell
    unknown = [f"line {c.line}: {c.text}" for b in BLOCKS for c in b.commands if c.kind == "unknown"]
    assert unknown == [], f"README commands no test can run (extend tests/test_readme.py): {unknown}"


def run_block(block: cr.Block, session: Session) -> None:
    if block.lang in cr.PYTHON_LANGS:
        script = session.cwd / "readme_block.py"
        script.write_text(
            textwrap.dedent(block.body)
            + "\n\nif __name__ == '__main__':\n"
            + "    for _n, _f in list(globals().items()):\n"
            + "        if _n.startswith('test_') and callable(_f):\n"
            + "            _f()\n"
        )
        r = session.sh(f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}", timeout=300, cwd=session.cwd)
        if r.returncode != 0:
            pytest.fail(f"README python block at line {block.line} failed\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return
    assert block.commands, f"README block at line {block.line} has no command"
    for c in block.commands:
        if c.kind == "unknown":
            _fail(c, None, "no test knows how to run this command")
        RUNNERS[c.kind](session, c)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_readme_block_runs(block: cr.Block, session: Session) -> None:
    run_block(block, session)


# --- the runner itself: it must fail where the README would mislead ---


def _blocks(tmp_path: Path, text: str) -> list[cr.Block]:
    p = tmp_path / "README.md"
    p.write_text(textwrap.dedent(text))
    return cr.readme_blocks(p)


def test_readme_runner_penctl_exit_codes_are_checked(tmp_path: Path, session: Session) -> None:
    (ok, refused, wrong) = _blocks(
        tmp_path,
        """\
        ```sh
        penctl --port /dev/ttyACM0 status
        PENCTL_PORT=/dev/ttyACM0 penctl get depth
        ```
        ```console
        $ penctl set depth 2.6   # refused, exit 1
        ```
        ```sh
        penctl set depth 2.6
        ```
        """,
    )
    assert [c.kind for c in ok.commands] == ["penctl", "penctl"] and refused.commands[0].expect_exit == 1
    run_block(ok, session)
    run_block(refused, session)
    with pytest.raises(pytest.fail.Exception, match="exit code 1, expected 0"):
        run_block(wrong, session)


def test_readme_runner_pensim_serve_gives_the_port(tmp_path: Path, session: Session) -> None:
    (block,) = _blocks(tmp_path, "```sh\npensim serve --runtime cpython &\npenctl info\n```\n")
    run_block(block, session)
    assert session.pensim is not None and session.port.startswith("/dev/")
    assert session.pen is None  # penctl talked to the pen pensim started


def test_readme_runner_python_block_and_unknown_commands_fail(tmp_path: Path, session: Session) -> None:
    (py, sh) = _blocks(tmp_path, "```python\ndef test_x():\n    assert 1 == 2\n```\n```sh\nrm -rf build\n```\n")
    with pytest.raises(pytest.fail.Exception, match="python block"):
        run_block(py, session)
    assert sh.commands[0].kind == "unknown"
    with pytest.raises(pytest.fail.Exception, match="no test knows"):
        run_block(sh, session)


def test_readme_runner_make_recipes_must_call_what_exists(session: Session) -> None:
    c = cr.Command(1, "make flash PORT=/dev/ttyACM0")
    for bad in (".venv/bin/penctl --port /dev/ttyACM0 no-such-subcommand", ".venv/bin/python -m no_such_module_x"):
        with pytest.raises((pytest.fail.Exception, AssertionError)):
            _check_calls(c, [bad], session)
    _check_calls(c, [".venv/bin/penctl --port /dev/ttyACM0 status", ".venv/bin/python -m sim.demo"], session)
