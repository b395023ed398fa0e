"""No committed file holds a path of the machine that made it: executed reports, their papermill
metadata, figures' records, the README, the shipped models' manifest and search journal. (The
reports runner scrubs what it writes, qinn_lib.notebook.runner.clean_report; this test finds what
slipped through, naming the file and the line.)"""

import re
from pathlib import Path

from qinn_lib import paths

ROOT = paths.repo_root()
#: What is committed and could carry a path (code and tests are not scanned: they name paths on purpose).
COMMITTED = ("notebooks/*.ipynb", "notebooks/*.py", "figures/*.json", "figures/*.svg", "README.md", "CITATION.cff",
             "environment.yml", "jupytext.toml", "qinn_lib/shipped_models/*.json", "qinn_lib/shipped_models/search/*")
#: An absolute path under a folder that only exists on some machine (a POSIX home, a temporary
#: folder, a container's /work, a Windows user folder); not part of a URL or a relative path.
MACHINE_PATH = re.compile(r"(?<![\w.:/~-])/(?:work|home|tmp|root|Users|mnt|scratch|private|var/folders)/[\w.-]"
                          r"|\b[A-Za-z]:\\\\?(?:Users|home)\b")


def committed_files() -> list[Path]:
    return sorted({p for pattern in COMMITTED for p in ROOT.glob(pattern) if p.is_file()})


def machine_paths(path: Path) -> list[str]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        for match in MACHINE_PATH.finditer(line):
            out.append(f"{path.relative_to(ROOT)}:{number}: {line[max(0, match.start() - 40):match.end() + 40].strip()}")
    return out


def test_the_pattern_finds_machine_paths_and_nothing_else():
    found = lambda text: bool(MACHINE_PATH.search(text))  # noqa: E731
    for text in ('"input_path": "/work/wt/paper/notebooks/01.ipynb"', "PosixPath('/home/ann/qinn/figures/results.json')",
                 "/tmp/ipykernel_15249/3904066155.py:9: FoldWarning", r"C:\Users\ann\qinn", "see /root/.cache/x"):
        assert found(text), text
    for text in ("https://github.com/home/work/x", "build/runs/qinn-1/tmp/x", "figures/results.json", "a/tmp/b",
                 "~/work/x", "ratio 3/tmp"):
        assert not found(text), text


def test_no_committed_file_holds_a_machine_path():
    files = committed_files()
    assert len(files) >= 20, f"only {len(files)} committed files found under {ROOT}"
    hits = [hit for path in files for hit in machine_paths(path)]
    assert not hits, "machine paths in committed files (re-run the report, or scrub it):\n" + "\n".join(hits[:20])
