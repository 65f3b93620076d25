# Hugging Face Space (SDK docker). A thin wrapper over the README's own commands:
# the same requirements.txt install, the same `python -m emulator` start.
FROM python:3.11-slim

RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PORT=7860 \
    DATA_DIR=/home/user/data
WORKDIR /home/user/app

COPY --chown=user requirements.txt ./
RUN python3.11 -m venv .venv && .venv/bin/pip install --no-cache-dir -r requirements.txt

# Pre-download the configured Whisper model so the Space never fetches it at run time
# (used by ASR_PROVIDER=local and by the local fallback of ASR_PROVIDER=hf).
ARG WHISPER_MODEL_SIZE=base
ENV WHISPER_MODEL_SIZE=${WHISPER_MODEL_SIZE}
COPY --chown=user . .
RUN .venv/bin/python -m emulator fetch-model

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '7860'), timeout=4)"
CMD ["python", "-m", "emulator"]
