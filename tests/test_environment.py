"""environment.yml (for conda users) must list exactly the requirements of pyproject.toml."""

import re
import tomllib

import yaml

from qinn_lib import paths

# conda-forge names that differ from PyPI names
CONDA_TO_PYPI = {"pytorch": "torch"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    assert m, f"cannot parse requirement {req!r}"
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _pyproject() -> dict:
    return tomllib.loads((paths.repo_root() / "pyproject.toml").read_text())


def _pyproject_requirements() -> dict[str, str]:
    """Every requirement of the package and its extras; an extra's reference to other extras of
    the package itself (``qinn[book,app]`` in ``dev``) adds no requirement of its own."""
    data = _pyproject()
    reqs = list(data["project"]["dependencies"])
    for extra in data["project"].get("optional-dependencies", {}).values():
        reqs += extra
    return {name: spec for name, spec in map(_split, reqs) if name != data["project"]["name"]}


def test_extras_that_name_the_package_name_its_own_extras():
    data = _pyproject()
    extras = data["project"]["optional-dependencies"]
    for reqs in extras.values():
        for req in reqs:
            name, spec = _split(req)
            if name == data["project"]["name"]:
                assert re.fullmatch(r"\[[a-z,]+\]", spec) and set(spec[1:-1].split(",")) <= set(extras), req


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((paths.repo_root() / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pipdep in dep.get("pip", []):
                if pipdep.startswith("-e"):
                    continue
                name, spec = _split(pipdep)
                out[name] = spec
            continue
        name, spec = _split(dep)
        if name in ("python", "pip"):
            continue
        spec = spec.lstrip("=") if spec.startswith("=") and not spec.startswith("==") else spec
        out[CONDA_TO_PYPI.get(name, name)] = spec
    return out


def test_environment_matches_pyproject():
    py = _pyproject_requirements()
    env = _environment_requirements()
    assert set(env) == set(py), (
        f"only in pyproject.toml: {sorted(set(py) - set(env))}; "
        f"only in environment.yml: {sorted(set(env) - set(py))}"
    )
    differing = {k: (py[k], env[k]) for k in py if py[k] != env[k]}
    assert not differing, f"version specifiers differ (pyproject, environment.yml): {differing}"


def test_environment_installs_the_package_itself():
    env = yaml.safe_load((paths.repo_root() / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_section
