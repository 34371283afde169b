# steplens image: the web process (EXTRAS=tool) or a PRM worker (EXTRAS=tool,worker: torch).
FROM python:3.11-slim

ARG EXTRAS=tool
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY annotate ./annotate
COPY scoring ./scoring
RUN pip install ".[${EXTRAS}]"

COPY . .
# Static files are collected at build time and served by WhiteNoise from the web process.
# collectstatic reads the settings, which need a key; this one exists only during the build.
RUN SECRET_KEY=collectstatic-only DJANGO_DEBUG=0 python manage.py collectstatic --noinput \
    && useradd --create-home --uid 1000 steplens \
    && mkdir -p /app/var && chown steplens /app/var
USER steplens
EXPOSE 8000
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"]
