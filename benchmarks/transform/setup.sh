#!/bin/sh
# The SDK comparison's own environment: Debian's docker-compose (the SDK's local mode calls it)
# and a virtualenv with the SageMaker Python SDK v2, apart from byoc's.
#   sh benchmarks/transform/setup.sh [VENV]     (default: /tmp/byoc-sdk-venv)
set -eu
venv=${1:-/tmp/byoc-sdk-venv}
if ! command -v docker-compose >/dev/null 2>&1; then
    apt-get update -q && apt-get install -y -q docker-compose
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "sagemaker<3"
echo "$venv/bin/python"
