"""Settings package: `base` holds everything; `local`, `production` and `test` adjust it.

One module per integration (`anthropic`, `celery`, `channels`) is imported by `base`.
"""
