#!/bin/sh
# Post a payload to the local server. Usage: local_test/predict.sh [FILE] [CONTENT_TYPE]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
payload=${1:-$here/payload.csv}
content_type=${2:-text/csv}
curl --fail-with-body -sS -H "Content-Type: $content_type" --data-binary "@$payload" \
    http://127.0.0.1:8080/invocations
