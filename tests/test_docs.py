"""What a new user reads first: README commands that run as written, the licence pyproject.toml
names, citation metadata, and command-line help that ends in full sentences."""

import re
import tomllib

import pytest
import yaml

from qinn_lib import paths
from qinn_lib.experiments import plans, publish
from qinn_lib.notebook import app, book, lab


def readme() -> str:
    return (paths.repo_root() / "README.md").read_text()


def test_readme_commands_use_the_venv():
    """The README's set-up creates .venv; every later command must use its Python and Jupyter."""
    bare = [m.group(0) for m in re.finditer(r"(?<![\w/.])(?<!-m )(python|jupyter|jupytext|pytest)\b[ -][^\n`]*", readme())
            if re.match(r"(python -m|jupyter lab|jupytext --|pytest )", m.group(0))]
    assert bare == [], f"commands without .venv/bin/: {bare}"


def test_readme_says_how_to_run_jupyterlab_as_root():
    assert "--allow-root" in readme()


def test_license_file_matches_pyproject():
    config = tomllib.loads((paths.repo_root() / "pyproject.toml").read_text())
    assert config["project"]["license"] == {"text": "MIT"}
    text = (paths.repo_root() / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c)" in text and "the qinn authors" in text


def test_citation_cites_the_paper_and_the_software():
    cff = yaml.safe_load((paths.repo_root() / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    config = tomllib.loads((paths.repo_root() / "pyproject.toml").read_text())
    assert cff["version"] == config["project"]["version"]
    paper = cff["preferred-citation"]
    assert paper["title"] == "Generative Invertible Quantum Neural Networks" and paper["year"] == 2023
    assert [a["family-names"] for a in paper["authors"]] == ["Rousselot", "Spannowsky"]
    assert "2302.12906" in paper["url"] and paper["identifiers"][0]["value"] == "10.48550/arXiv.2302.12906"


@pytest.mark.parametrize("main", [plans.main, publish.main, lab.main, book.main, app.main])
def test_help_ends_in_a_full_sentence(main, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    description = out.split("\n\n")[1].strip()
    assert description.endswith("."), f"help description ends mid-sentence: {description[-60:]!r}"
