# deckgen's service image: gunicorn running the Flask app factory, with the embedded local
# model (llama.cpp + SmolLM2) so it answers even before a self-hosted model or OpenAI key is
# configured.
#
#   docker build -t deckgen .
#   docker run -p 8080:8080 -v deckgen-data:/data -e OPENAI_API_KEY=... deckgen

# --- build: compile llama-cpp-python and collect every wheel ----------------------------
# The runtime is built for a portable CPU baseline (x86-64-v3: AVX2/FMA/F16C, no AVX-512, no
# AMX) by the same script as `make`, never -march=native: the image runs on any host with
# AVX2, not only on hosts like the one that built it.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/build_llama.sh scripts/llama_no_common.cmake ./scripts/
RUN mkdir -p /llama && PYTHON=python scripts/build_llama.sh /llama > /llama/where
COPY setup.cfg pyproject.toml README.md ./
COPY deckgen ./deckgen
RUN pip wheel --wheel-dir /wheels --find-links "$(cat /llama/where)" \
    --only-binary llama-cpp-python '.[crm]'

# --- run -----------------------------------------------------------------------------
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 deckgen \
    && mkdir /data && chown deckgen /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'deckgen[crm]' && rm -rf /wheels
WORKDIR /app
COPY prompts ./prompts
COPY examples ./examples
ENV DECKGEN_PROMPTS_DIR=/app/prompts \
    DECKGEN_EXAMPLES_DIR=/app/examples \
    DECKGEN_DATABASE_URL=/data/deckgen.sqlite3 \
    DECKGEN_OUTPUT_DIR=/data/decks \
    PYTHONUNBUFFERED=1
USER deckgen
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD curl -fsS http://localhost:8080/healthz || exit 1
# One process with threads: the job workers live in it, and the store keeps them honest
# when you scale out with more containers.
CMD ["gunicorn", "--bind", "0.0.0.0:8080", "--workers", "1", "--threads", "8", \
     "--timeout", "300", "deckgen.api:create_app()"]
