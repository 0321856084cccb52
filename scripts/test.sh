#!/usr/bin/env bash
# The project's test command (README, .ci/run): engine and S3 test server ready, lints, all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# ensure-s3.sh: the S3-compatible server (moto) of the off-site tests.
# ensure-observe.sh: prometheus, postgres_exporter and tmux for the stats/top/metrics tests.
if [ "$(id -u)" = 0 ]; then
    scripts/ensure-engine.sh
    scripts/ensure-s3.sh
    scripts/ensure-rootless.sh
    scripts/ensure-observe.sh
else
    sudo -n scripts/ensure-engine.sh 2>/dev/null || scripts/ensure-engine.sh
    sudo -n scripts/ensure-s3.sh 2>/dev/null || scripts/ensure-s3.sh
    sudo -n scripts/ensure-observe.sh 2>/dev/null || scripts/ensure-observe.sh
fi

echo "== cargo fmt --check" >&2
cargo fmt --check
echo "== shellcheck" >&2
shellcheck scripts/*.sh .ci/run
(cd templates/image && shellcheck -x -P . entrypoint.sh utils/*.sh init/*.sh runtime/*.sh)
echo "== cargo clippy" >&2
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test" >&2
cargo test --locked
