#!/usr/bin/env bash
# The built wheel in a fresh venv without torch or jax (#22 item 5): numpy, pydantic and
# google-re2 from the registry, then the wheel; `import initspec`, `initspec validate` and
# `initspec sample` work, and what needs a framework names the extra to install.
#   scripts/check_wheel.sh            (PY=python3.12 scripts/check_wheel.sh for another Python)
set -euo pipefail
PY=${PY:-python3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PY" -m venv "$WORK/venv"
BIN="$WORK/venv/bin"
"$BIN/pip" install -q --upgrade pip
# Built from a copy of the tracked files (as they are in the working tree): pip builds in
# the source folder, and the repository gets no build/ or egg-info from this check.
mkdir "$WORK/src"
git -C "$REPO" ls-files -z | (cd "$REPO" && tar --null -T - -cf -) | tar -x -C "$WORK/src"
"$BIN/pip" wheel -q --no-deps -w "$WORK/dist" "$WORK/src"
WHEEL=$(ls "$WORK"/dist/initspec-*.whl)
echo "built $(basename "$WHEEL")"
"$BIN/pip" install -q numpy pydantic google-re2
"$BIN/pip" install -q "$WHEEL"   # its dependencies are there: nothing else is installed

cd "$WORK"  # not the repository: the installed package is what runs
"$BIN/python" - "$WHEEL" <<'PY'
import importlib.util, json, sys, zipfile

for framework in ("torch", "jax", "flax", "matplotlib"):
    assert importlib.util.find_spec(framework) is None, f"{framework} is installed"
import initspec

assert initspec.__file__.startswith(sys.prefix), initspec.__file__
x = initspec.sample({"kind": "kaiming_normal"}, (64, 32), seed=0)
assert x.shape == (64, 32)
with zipfile.ZipFile(sys.argv[1]) as wheel:
    names = wheel.namelist()
    meta = wheel.read(next(n for n in names if n.endswith("METADATA"))).decode()
assert any(n.endswith("licenses/LICENSE") for n in names), names
assert any(n.endswith("preset_files/gpt2.json") for n in names)
for line in ("License-Expression: Apache-2.0", "Project-URL: Homepage, https://github.com/initspec/initspec",
             "Classifier: Typing :: Typed", "Provides-Extra: flax", f"Version: {initspec.__version__}"):
    assert line in meta, line
for module, extra in (("initspec_torch", "torch"), ("initspec_jax", "jax")):
    try:
        importlib.import_module(module)
    except ImportError as exc:
        assert f"pip install 'initspec[{extra}]'" in str(exc), exc
    else:
        raise AssertionError(f"{module} imported without its framework")
try:
    initspec.plot.std_chart(initspec.resolve.resolve("torch-defaults", []).report())
except ImportError as exc:
    assert "pip install 'initspec[plot]'" in str(exc), exc
else:
    raise AssertionError("initspec.plot drew without matplotlib")
print(f"import initspec {initspec.__version__}: ok ({initspec.__file__})")
PY

INITSPEC="$BIN/initspec"
"$INITSPEC" --version
printf '{"initspec": 1, "rules": [{"match": {"role": "bias"}, "init": {"kind": "zeros"}}]}' > good.json
printf '{"initspec": 1, "rules": [{"init": {"kind": "kaiming_normall"}}]}' > bad.json
"$INITSPEC" validate good.json gpt2 '{"kind": "he_normal"}'
set +e
"$INITSPEC" validate bad.json 2> err.txt; status=$?
set -e
test "$status" = 1 && grep -q "did you mean 'kaiming_normal'" err.txt
echo "validate bad.json: exit $status, $(grep -o "did you mean '[a-z_]*'?" err.txt)"
"$INITSPEC" sample '{"kind": "he_normal"}' --shape 3,3,64,128 --layout flax --json > sample.json
"$BIN/python" -c "import json; d = json.load(open('sample.json')); assert d['fans'] == [576, 1152], d; print('sample: std', d['measured']['std'], 'exact', d['exact']['std'])"
set +e
"$INITSPEC" explain torch-defaults --torch m:f 2> err.txt; status=$?
set -e
test "$status" = 2 && grep -q "pip install 'initspec\[torch\]'" err.txt
echo "explain --torch without torch: exit $status: $(cat err.txt)"
echo "wheel check: ok"
