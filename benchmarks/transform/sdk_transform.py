#!/usr/bin/env python3
"""One batch transform through the SageMaker Python SDK's local mode (run with the SDK's Python).

    sdk_transform.py IMAGE MODEL_TAR INPUT_DIR OUTPUT_DIR STRATEGY PORT

Prints one JSON line: {"seconds": wall time of transform(), "files": [...]}.
Needs docker-compose on PATH, and AWS credentials and a region in the environment (dummy
ones do: local mode makes no AWS call for file:// data).
"""

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sagemaker.local import LocalSession
from sagemaker.model import Model

image, model_tar, input_dir, output_dir, strategy, port = sys.argv[1:7]
# local mode extracts model.tar.gz next to itself and mounts that directory: give it its own
scratch = Path(tempfile.mkdtemp(prefix="sdk-model-"))
shutil.copy(model_tar, scratch / "model.tar.gz")
session = LocalSession()
session.config = {"local": {"local_code": True, "serving_port": int(port)}}
model = Model(image_uri=image, model_data=f"file://{scratch}/model.tar.gz",
              role="arn:aws:iam::000000000000:role/bench", sagemaker_session=session)
transformer = model.transformer(instance_count=1, instance_type="local", strategy=strategy,
                                assemble_with="Line", accept="text/csv",
                                output_path=f"file://{output_dir}")
start = time.monotonic()
# local mode runs the whole job inside this call; wait/logs would ask CloudWatch for logs
transformer.transform(f"file://{input_dir}", content_type="text/csv", split_type="Line",
                      wait=False, logs=False)
seconds = time.monotonic() - start
shutil.rmtree(scratch, ignore_errors=True)
print(json.dumps({"seconds": seconds,
                  "files": sorted(str(p.relative_to(output_dir)) for p in Path(output_dir).rglob("*")
                                  if p.is_file())}), flush=True)
