# One image for every orderdesk process: the compose services differ only in their command
# (`migrate`, `command-api`, `relay`, `worker`, `query-api`).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Everything the distribution needs to build, and nothing else (see .dockerignore).
COPY pyproject.toml README.md ./
COPY orderdesk ./orderdesk
COPY command_side ./command_side
COPY query_side ./query_side
COPY projections ./projections
COPY shared_contracts ./shared_contracts
COPY migrations ./migrations
RUN pip install . \
    && useradd --system --uid 10001 --create-home --home-dir /home/orderdesk orderdesk

# Never run as root. The working directory stays read-only for the app: every process is
# stateless and talks to PostgreSQL/Redis by URL (ORDERDESK_DATABASE_URL, ORDERDESK_REDIS_URL).
USER orderdesk
WORKDIR /home/orderdesk

EXPOSE 8000 8001 9100
ENTRYPOINT ["orderdesk"]
CMD ["--help"]
