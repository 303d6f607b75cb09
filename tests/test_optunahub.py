"""The OptunaHub packages under ``optunahub/package/`` stay in step with the library."""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
import types
from pathlib import Path

import optuna
import pytest
import yaml

import sh_scaling

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "optunahub" / "package"
PACKAGES = {
    # package: (category tag, {name: library object})
    "pruners/surrogate_halving": ("pruner", {"SurrogateHalvingPruner": sh_scaling.SurrogateHalvingPruner,
                                              "report": sh_scaling.report}),
    "samplers/scaling_prior": ("sampler", {"ScalingPriorSampler": sh_scaling.ScalingPriorSampler,
                                           "ScalingLawPrior": sh_scaling.ScalingLawPrior}),
}
FILES = ("README.md", "__init__.py", "example.py", "LICENSE", "requirements.txt")


def load(package: str) -> types.ModuleType:
    """The package as ``optunahub.load_module`` would give it, from the local folder."""
    try:
        import optunahub
    except ImportError:
        optunahub = None
    if optunahub is not None:
        return optunahub.load_local_module(package=package, registry_root=str(REGISTRY))
    # Same thing by hand: the folder imported as a package, so its relative imports resolve.
    name = "ohub_" + package.replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, REGISTRY / package / "__init__.py",
                                                  submodule_search_locations=[str(REGISTRY / package)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def ci_pinned_versions(package: str) -> list[str]:
    """The versions of ``package`` pinned by CI's constraint files (the oldest claimed and the newest tested)."""
    found = []
    for path in sorted((ROOT / ".ci").glob("constraints-*.txt")):
        for line in path.read_text().splitlines():
            m = re.match(rf"{re.escape(package)}==([\w.]+)\s*$", line.strip(), re.I)
            if m:
                found.append(m.group(1))
    return found


def front_matter(package: str) -> tuple[dict, str]:
    text = (REGISTRY / package / "README.md").read_text()
    m = re.match(r"---\n(.*?)\n---\n(.*)", text, re.S)
    assert m, f"{package}/README.md must start with a --- front matter block ---"
    return yaml.safe_load(m.group(1)), m.group(2)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_layout_and_front_matter(package):
    folder = REGISTRY / package
    for f in FILES:
        assert (folder / f).is_file(), f"{package} lacks {f}"
    meta, _ = front_matter(package)
    assert set(meta) == {"author", "title", "description", "tags", "optuna_versions", "license"}
    for key in ("author", "title", "description", "license"):
        assert isinstance(meta[key], str) and meta[key].strip(), key
    tag, _ = PACKAGES[package]
    assert tag in meta["tags"], f"a package under {package.split('/')[0]}/ must carry the tag {tag!r}"
    # The versions listed are those CI runs the package with (the pins of .ci/constraints-*.txt), whatever Optuna
    # happens to be installed here: a new Optuna release must not turn this test red.
    assert sorted(map(str, meta["optuna_versions"])) == sorted(ci_pinned_versions("optuna"))
    # The registry accepts only the MIT License for a package's files (.ci/optunahub_check.sh runs its checks);
    # the README says that the library they re-export is under the Apache License 2.0.
    assert meta["license"] == "MIT License"
    assert (folder / "LICENSE").read_text().startswith("MIT License\n")
    assert "Apache License 2.0" in (folder / "README.md").read_text()
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    # __init__.py imports its names relatively (OptunaHub loads the folder as a package).
    init = (folder / "__init__.py").read_text()
    assert re.findall(r"^from \.\w+ import", init, re.M) and not re.findall(r"^from sh_scaling", init, re.M)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_names_are_the_library_objects(package):
    _, names = PACKAGES[package]
    mod = load(package)
    assert sorted(mod.__all__) == sorted(names)
    for name, obj in names.items():
        assert getattr(mod, name) is obj  # re-exported, never a copy that could drift


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_readme_matches_library_and_example(package):
    meta, body = front_matter(package)
    _, names = PACKAGES[package]
    # The description opens with the first line of the main class's docstring (the first name listed).
    main = next(iter(names.values()))
    assert meta["description"].startswith(inspect.getdoc(main).splitlines()[0])
    section = body.split("## Class or Function Names", 1)[1].split("##", 1)[0]
    assert sorted(re.findall(r"^- (\w+)", section, re.M)) == sorted(names)
    example = (REGISTRY / package / "example.py").read_text()
    assert f"```python\n{example}```" in body, "README's example must be example.py verbatim"
    assert f'load_module(package="{package}")' in example
    req = (REGISTRY / package / "requirements.txt").read_text().split()
    assert req == [f"sh_scaling>={sh_scaling.__version__}"]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_example_runs(package, monkeypatch, capsys):
    optunahub = pytest.importorskip("optunahub")
    # load_module would fetch the package from GitHub; the local folder is what is tested here.
    monkeypatch.setattr(optunahub, "load_module", lambda package, **kw: load(package))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    code = (REGISTRY / package / "example.py").read_text()
    exec(compile(code, str(REGISTRY / package / "example.py"), "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert out.startswith("best loss")
    if package.startswith("pruners"):
        assert re.search(r"; ([1-9]\d*) of 40 trials pruned", out), out
