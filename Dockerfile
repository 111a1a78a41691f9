# One image for the API (granian, via manage.py run_web), the partition workers and Flower.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=project.settings.production

WORKDIR /app
RUN useradd --create-home --uid 1000 app

COPY pyproject.toml README.md ./
COPY project ./project
COPY tagging ./tagging
COPY quotas ./quotas
COPY writes ./writes
COPY workers ./workers
COPY stress ./stress
COPY manage.py ./
RUN pip install --no-cache-dir . \
 && SECRET_KEY=collectstatic-only-not-a-real-secret-key-0123456789abcdefghij \
    python manage.py collectstatic --no-input -v 0 \
 && chown -R app:app /app

USER app
EXPOSE 8000 5555
CMD ["python", "manage.py", "run_web", "--host", "0.0.0.0", "--port", "8000"]
