# sweepdoc image: the API, the dashboard and the workers all run from it (see docker-compose.yml).
# The default PyPI torch wheel for Linux x86-64 is a CUDA build, so the same image trains on a
# GPU host (through the NVIDIA container toolkit) and on a CPU-only one.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SWEEPDOC_HOME=/var/lib/sweepdoc \
    SWEEPDOC_DATA_DIR=/data

WORKDIR /app
# Dependencies first, so code changes do not reinstall torch.
COPY pyproject.toml README.md ./
RUN mkdir -p service studies trainer \
    && touch service/__init__.py studies/__init__.py trainer/__init__.py \
    && pip install . \
    && pip uninstall -y sweepdoc
COPY service ./service
COPY studies ./studies
COPY trainer ./trainer
RUN pip install --no-deps .

# A non-root user owns the state folder; the dataset root is mounted read-only.
RUN useradd --system --create-home --uid 10001 sweepdoc \
    && mkdir -p /var/lib/sweepdoc /data \
    && chown -R sweepdoc:sweepdoc /var/lib/sweepdoc
USER sweepdoc

EXPOSE 8000
ENTRYPOINT ["sweepdoc"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "0"]
