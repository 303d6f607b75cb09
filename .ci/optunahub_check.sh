#!/usr/bin/env bash
# The checks the OptunaHub registry (github.com/optuna/optunahub-registry) runs on a package submitted to it, run
# on ours (optunahub/package/) with the registry's configuration (.ci/optunahub-registry.toml) and the tools'
# versions its CI uses (.ci/optunahub-tools.txt): the README front matter, `ruff check`, `ruff format --check`,
# `mdformat --check` on the READMEs and mypy. The packages are copied into the registry's layout
# (package/<category>/<name>/ beside the registry's pyproject.toml) so that every tool reads its configuration
# as it does there. Every check runs; the script fails if any of them did.
#
#   .ci/optunahub_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sh_scaling_optunahub.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The tools in an environment of their own: like the registry's pre-commit environments, it holds neither
# optuna nor sh_scaling, so mypy types them as missing imports there too.
"$PYTHON" -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install -q -r .ci/optunahub-tools.txt
BIN=$WORK/tools/bin

mkdir "$WORK/registry"
cp -r optunahub/package "$WORK/registry/package"
cp .ci/optunahub-registry.toml "$WORK/registry/pyproject.toml"
cd "$WORK/registry"
find package -name __pycache__ -prune -exec rm -rf {} +
READMES=$(find package -name README.md | sort)
SOURCES=$(find package -name '*.py' | sort)

status=0
check() {
    echo "-- $1"
    shift
    "$@" || { status=1; echo "   FAILED"; }
}

# The registry's header check (optunahub-registry/header_confirm.py): these keys, of these types, and the MIT
# License; its template adds that a package under package/<category>/ carries the category's tag.
front_matter() {
    "$BIN/python" - $READMES <<'EOF'
import sys

import frontmatter

TAGS = {"samplers": "sampler", "pruners": "pruner", "visualization": "visualization"}
failed = False
for path in sys.argv[1:]:
    post = frontmatter.load(path)
    problems = [f"{key} is not a string" for key in ("author", "title", "description", "license")
                if not isinstance(post.get(key), str)]
    problems += [f"{key} is not a list of strings" for key in ("tags", "optuna_versions")
                 if not (isinstance(post.get(key), list) and all(isinstance(v, str) for v in post[key]))]
    if post.get("license") != "MIT License":
        problems.append(f"license must be 'MIT License', not {post.get('license')!r}")
    tag = TAGS.get(path.split("/")[1])
    if tag and tag not in (post.get("tags") or []):
        problems.append(f"tags must include {tag!r}")
    for problem in problems:
        print(f"{path}: {problem}")
    failed |= bool(problems)
sys.exit(1 if failed else 0)
EOF
}

check "front matter ($(echo $READMES | wc -w) READMEs)" front_matter
check "ruff $("$BIN/ruff" --version | cut -d' ' -f2) check" "$BIN/ruff" check package
check "ruff format --check" "$BIN/ruff" format --check --diff package
check "mdformat $("$BIN/mdformat" --version | cut -d' ' -f2) --check" "$BIN/mdformat" --check $READMES
# The registry's mypy hook (pre-commit mirrors-mypy) adds these arguments, on the Python its CI runs (3.10).
check "mypy $("$BIN/mypy" --version | cut -d' ' -f2)" "$BIN/mypy" --python-version 3.10 --ignore-missing-imports \
    --scripts-are-modules --no-warn-unused-ignores --cache-dir "$WORK/mypy_cache" $SOURCES

if [ "$status" -ne 0 ]; then
    echo "OptunaHub registry checks FAILED (packages in $ROOT/optunahub/package)"
else
    echo "OptunaHub registry checks passed"
fi
exit "$status"
