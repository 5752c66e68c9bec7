# syntax=docker/dockerfile:1
# moonkeep's image: Debian 12 (bookworm) slim, built in one stage and run in
# another that holds only the runtime libraries, the binary, the scripts,
# the migrations and the Swagger UI assets. Every step is a section of
# tools/container-steps.sh, which the test suite also runs on the host
# (spec/e2e/container_spec.lua); see README.md, "Container".
#
#   docker build -t moonkeep .
#   docker compose up        (docker-compose.yml: + PostgreSQL 15 + Mailpit)

# ---- build ------------------------------------------------------------------
FROM debian:bookworm-slim AS build
# the package list first, so that the layer with the -dev packages is cached
COPY vendor/debian-packages.txt /src/vendor/debian-packages.txt
COPY tools/container-steps.sh /src/tools/container-steps.sh
RUN /src/tools/container-steps.sh build-deps
COPY . /src
# an image built from a tree without .git is told its version this way
ARG MOONKEEP_VERSION=
# extra_ca: an optional CA for npm behind a TLS-intercepting proxy, a build
# secret so that it is in no layer (tools/image.sh passes it)
RUN --mount=type=secret,id=extra_ca \
    MOONKEEP_VERSION="$MOONKEEP_VERSION" /src/tools/container-steps.sh build /src /opt/moonkeep /tmp/build

# ---- run --------------------------------------------------------------------
FROM debian:bookworm-slim
COPY tools/container-steps.sh /tmp/container-steps.sh
RUN /tmp/container-steps.sh runtime-deps && /tmp/container-steps.sh user && rm /tmp/container-steps.sh
COPY --from=build /opt/moonkeep /opt/moonkeep
# fails the build if a linked library is missing or the scripts do not load
RUN /opt/moonkeep/bin/container-steps.sh check-runtime /opt/moonkeep

# numeric, so that an engine that must refuse root (Kubernetes'
# runAsNonRoot, ECS policies) can tell without reading /etc/passwd
USER 10001:10001
# writable: mail goes to var/outbox here when MAIL_URL is unset
WORKDIR /var/lib/moonkeep
ENV HOST=0.0.0.0 \
    PORT=5000 \
    LOG_LEVEL=info
EXPOSE 5000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=3 \
  CMD ["/opt/moonkeep/bin/container-steps.sh", "healthcheck"]
# tini is PID 1 (`start` execs it): see README.md, "Container", for why
ENTRYPOINT ["/opt/moonkeep/bin/container-steps.sh", "start"]
CMD ["serve"]
