#!/bin/sh
# Train with plain Docker, as SageMaker would: `docker run IMAGE train` on a copy
# of local_test/test_dir mounted at /opt/ml. Usage: local_test/train_local.sh IMAGE
set -eu
image=${1:?usage: $0 IMAGE}
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/../.byoc/plain}
rm -rf "$out" && mkdir -p "$out"
cp -R "$here/test_dir/." "$out/"
mkdir -p "$out/model" "$out/output/data"
docker run --rm -v "$out:/opt/ml" "$image" train
echo "model: $out/model"
