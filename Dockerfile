# dynsup as a container's init (README.md, "In a container"; docs/OPERATIONS.md).
#   docker build -t my/dynsup . && docker run -d --name sup my/dynsup
# Stage 1 builds both binaries; stage 2 is a slim Debian with them, the shipped config
# and nothing else.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --workspace \
 && install -D -m 755 -t /out target/release/dynsup target/release/dynsup-worker

FROM debian:bookworm-slim
COPY --from=build /out/dynsup /out/dynsup-worker /usr/local/bin/
COPY config/dynsup.toml /etc/dynsup/dynsup.toml
# Not root: the daemon and its workers run as `dynsup`, and so does `docker exec` (the
# socket accepts its owner's uid). Remove USER for workers with `user =` or `cgroup = true`.
RUN useradd --system --home-dir /var/lib/dynsup --create-home --shell /usr/sbin/nologin dynsup \
 && install -d -o dynsup -g dynsup -m 0755 /run/dynsup
USER dynsup
WORKDIR /var/lib/dynsup
# The socket, explicitly: the daemon binds it (--socket) and the CLI finds it there
# (DYNSUP_SOCKET), so `docker exec sup dynsup list` and the health check need no flag.
ENV DYNSUP_SOCKET=/run/dynsup/dynsup.sock
# dynsup is PID 1: SIGTERM/SIGINT/SIGQUIT stop every worker in order, then exit 0;
# orphans are reaped. Exec form, so no shell sits between docker and dynsup.
ENTRYPOINT ["dynsup", "daemon", "--config", "/etc/dynsup/dynsup.toml", "--socket", "/run/dynsup/dynsup.sock"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["dynsup", "health"]
