# SageMaker runs this image as `docker run IMAGE train` and `docker run IMAGE serve`, and a
# processing job with ContainerEntrypoint ["evaluate"]: the programs live in /opt/program, on PATH. No ENTRYPOINT, no tini.
# BASE_IMAGE: any Debian or Ubuntu image with python3 and python3-venv, e.g. a CUDA
# runtime image with them added, for GPUs (see the README).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# The virtualenv is built in a stage of its own, so the wheels in wheels/ never reach the image.
FROM ${BASE_IMAGE} AS venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY container/requirements.txt /opt/requirements.txt
# wheels/: put wheels here to install them offline (pip takes them before any index)
COPY wheels/ /opt/wheels/
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --find-links /opt/wheels -r /opt/requirements.txt

FROM ${BASE_IMAGE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx ca-certificates \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/program:/opt/venv/bin:$PATH

COPY --from=venv /opt/venv /opt/venv

COPY container/iris_classifier /opt/program
RUN chmod 755 /opt/program/train /opt/program/serve /opt/program/evaluate
WORKDIR /opt/program

# SAGEMAKER_BIND_TO_PORT: serve listens where SageMaker says (inference pipelines).
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
EXPOSE 8080
CMD ["serve"]
