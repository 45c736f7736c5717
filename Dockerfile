# Two images from one file:
#   api (the default target, small): `cairn api`, `cairn projector`, `cairn scheduler`;
#   worker: the same Cairn plus git, gh, node and the pinned agent CLIs (`cairn agents install`),
#   so `cairn worker` probes PATH and offers claude, codex and gemini once they can sign in.
FROM python:3.11-slim AS api
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .

FROM api AS worker
# Node 20 or later (gemini needs it; Debian 12 ships 18): the official image's binaries.
COPY --from=node:20-bookworm-slim /usr/local/bin/node /usr/local/bin/node
COPY --from=node:20-bookworm-slim /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && apt-get update \
 && apt-get install -y --no-install-recommends git gh ca-certificates bubblewrap \
 && rm -rf /var/lib/apt/lists/*
# The CLIs at the versions Cairn pins, outside the data volume (which would hide them).
RUN CAIRN_DATA_DIR=/opt/cairn cairn agents install all
ENV PATH=/opt/cairn/agents/node_modules/.bin:$PATH
# Not root: each agent step runs in bubblewrap (worker/sandbox.py) as this user, in user
# namespaces of its own (compose.yaml lets the container make them). /data is its, so the named
# volume starts out its too.
RUN useradd --create-home --uid 1000 cairn && mkdir -p /data && chown cairn:cairn /data
USER cairn
