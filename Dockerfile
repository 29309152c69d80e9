# SageMaker runs this image as `docker run IMAGE train` and `docker run IMAGE serve`:
# both programs live in /opt/program, which is on PATH. No ENTRYPOINT, no tini.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx ca-certificates \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/program:/opt/venv/bin:$PATH

COPY container/requirements.txt /opt/requirements.txt
RUN python3 -m venv /opt/venv \
    && pip install --no-cache-dir -r /opt/requirements.txt

COPY container/iris_classifier /opt/program
RUN chmod 755 /opt/program/train /opt/program/serve
WORKDIR /opt/program

LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
EXPOSE 8080
CMD ["serve"]
