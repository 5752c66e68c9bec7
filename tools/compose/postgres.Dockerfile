# The compose stack's PostgreSQL where the postgres image cannot be pulled
# (docker-compose.offline.yml): Debian's postgresql-15 on the local Debian
# base, started the way the official image starts (POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB; data in /var/lib/postgresql/data).
FROM debian:bookworm-slim
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql-15 \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
