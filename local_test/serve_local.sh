#!/bin/sh
# Serve the model that train_local.sh wrote, on 127.0.0.1:8080, with plain Docker.
# Usage: local_test/serve_local.sh IMAGE
set -eu
image=${1:?usage: $0 IMAGE}
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/../.byoc/plain}
docker run --rm -p 127.0.0.1:8080:8080 -v "$out/model:/opt/ml/model:ro" "$image" serve
