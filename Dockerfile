FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY supportbot ./supportbot
COPY apps ./apps
RUN pip install --no-cache-dir .
COPY . .
RUN DJANGO_SETTINGS_MODULE=supportbot.settings.local python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["python", "manage.py", "serve", "--host", "0.0.0.0"]
