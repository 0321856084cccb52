#!/usr/bin/env bash
# Regenerates completions/ from the CLI definition; a test fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
mkdir -p completions
./target/debug/pgbox completions bash >completions/pgbox.bash
./target/debug/pgbox completions zsh >completions/_pgbox
./target/debug/pgbox completions fish >completions/pgbox.fish
echo "completions/ regenerated"
