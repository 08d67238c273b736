FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# The same hash-checked lock as `make run` and `make test`: nothing outside it is installed.
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY supportbot ./supportbot
COPY apps ./apps
RUN pip install --no-cache-dir --no-deps --no-build-isolation .
COPY . .
RUN DJANGO_SETTINGS_MODULE=supportbot.settings.local python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["python", "manage.py", "serve", "--host", "0.0.0.0"]
