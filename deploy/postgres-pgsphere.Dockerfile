# PostgreSQL 15 with pgSphere from Debian, repaired (see db/pgsphere.py) so CREATE EXTENSION works.
FROM postgres:15-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15-pgsphere python3 \
    && rm -rf /var/lib/apt/lists/*
COPY db/pgsphere.py /tmp/pgsphere.py
RUN python3 /tmp/pgsphere.py && rm /tmp/pgsphere.py
