# The compose stack's mail catcher where the mailpit image cannot be pulled
# (docker-compose.offline.yml): the test suite's SMTP sink (smtp-sink.py,
# Debian's aiosmtpd) on the local Debian base, writing each message it
# accepts as an .eml file to /mail (a volume). Build context: tools/.
FROM debian:bookworm-slim
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-aiosmtpd \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY smtp-sink.py /usr/local/bin/smtp-sink.py
EXPOSE 1025
CMD ["/usr/bin/python3", "/usr/local/bin/smtp-sink.py", "1025", "/mail", "--host", "0.0.0.0"]
