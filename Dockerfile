FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config config
COPY specs specs
COPY store store
COPY mail mail
COPY localsmtp localsmtp
COPY limits limits
COPY activities activities
COPY workflows workflows
COPY workers workers
COPY client client
RUN pip install --no-cache-dir .
USER nobody
CMD ["outreach", "worker"]
