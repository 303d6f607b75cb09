#!/usr/bin/env bash
# The release artefacts, checked as a user receives them: builds the sdist and the wheel (the wheel from the
# sdist, so a file missing from the sdist shows here), runs `twine check --strict`, checks what the wheel holds,
# installs the wheel (not this checkout) into a clean virtual environment, and from a directory outside the
# checkout runs the quickstart example and a short simulation with the `sh-scaling` command.
#
#   .ci/wheel_check.sh                  # uses python3; PYTHON=python3.12 .ci/wheel_check.sh for another
#   KEEP=1 .ci/wheel_check.sh           # keep the work directory (dist/, environments, outputs)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 MPLBACKEND=Agg
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sh_scaling_wheel.XXXXXX")
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$WORK"' EXIT; else echo "work directory: $WORK"; fi

echo "== build and twine check"
"$PYTHON" -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install -q -c .ci/constraints-newest.txt build twine
"$WORK/tools/bin/python" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
"$WORK/tools/bin/twine" check --strict "$WORK/dist/"*
WHEEL=$(ls "$WORK/dist/"*.whl)

echo "== wheel contents"
"$WORK/tools/bin/python" - "$WHEEL" <<'EOF'
import sys
import tomllib
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
packages = tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]["packages"]
missing = [p for p in packages if f"{p.replace('.', '/')}/__init__.py" not in names]
missing += [f for f in ("sh_scaling/py.typed", "sh_scaling/integrations/__init__.py") if f not in names]
tests = [n for n in names if n.startswith("tests/") or "/tests/" in n or n.rsplit("/", 1)[-1].startswith(
    ("test_", "conftest"))]
stray = [n for n in names if not n.startswith(("sh_scaling/", "sh_scaling-"))]
assert not missing, f"missing from the wheel: {missing}"
assert not tests, f"tests in the wheel: {tests}"
assert not stray, f"files outside the package in the wheel: {stray}"
print(f"{sys.argv[1].rsplit('/', 1)[-1]}: {len(names)} files, {len(packages)} packages, py.typed, "
      "sh_scaling.integrations, no tests")
EOF

echo "== install the wheel in a clean environment"
"$PYTHON" -m venv "$WORK/env"
"$WORK/env/bin/pip" install -q -c .ci/constraints-newest.txt "$WHEEL[plot]"
mkdir "$WORK/run"
cp examples/pruner_quickstart.py "$WORK/run/"
cd "$WORK/run"
"$WORK/env/bin/python" -c "
import sys, sh_scaling, sh_scaling.integrations
assert sh_scaling.__file__.startswith(sys.prefix), sh_scaling.__file__
assert not sh_scaling.__file__.startswith('$ROOT'), sh_scaling.__file__
print(f'sh_scaling {sh_scaling.__version__} from {sh_scaling.__file__}')"

echo "== examples/pruner_quickstart.py (from $WORK/run)"
"$WORK/env/bin/python" pruner_quickstart.py

echo "== sh-scaling simulate --curves synthetic --repeats 2"
"$WORK/env/bin/sh-scaling" --version
"$WORK/env/bin/sh-scaling" simulate --curves synthetic --repeats 2 --out "$WORK/run/simulate"
for f in runs.csv summary.csv summary.json ri_by_budget.png frontiers.png; do
    test -s "$WORK/run/simulate/$f" || { echo "sh-scaling simulate did not write $f"; exit 1; }
done
echo "== wheel check passed: $(basename "$WHEEL")"
