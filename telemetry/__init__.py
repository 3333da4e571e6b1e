"""What a worker tells its operators: Prometheus metrics (our own and the
Temporal SDK's) and the periodic gauges read from PostgreSQL and Redis."""
