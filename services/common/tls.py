"""TLS for every gRPC hop, from environment settings: one place for servers and clients.

Servers (in ServerSettings, so per service): <NAME>_TLS_CERT + <NAME>_TLS_KEY serve TLS;
<NAME>_TLS_CLIENT_CA additionally requires a client certificate signed by that CA (mutual TLS).
Clients (every channel built by services.common.channels): GRPC_TLS_CA turns TLS on and is the
only CA trusted for our services; GRPC_TLS_CLIENT_CERT + GRPC_TLS_CLIENT_KEY are presented for
mutual TLS; GRPC_TLS_SERVER_NAME overrides the name checked in the server's certificate (when
services are dialled by IP). Nothing set = plaintext, the loopback default of `make run`.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.common.config import ConfigError, env, load


def pem_file(raw: str) -> str:
    """A config parser: the path of a readable PEM file ('' = unset)."""
    raw = raw.strip()
    if raw and not Path(raw).is_file():
        raise ValueError(f"no such file: {raw}")
    if raw and b"-----BEGIN " not in Path(raw).read_bytes()[:4096]:
        raise ValueError(f"{raw} is not a PEM file")
    return raw


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


@dataclass(frozen=True)
class ServerTls:
    """The TLS part of ServerSettings (embedded there; read as <NAME>_TLS_*)."""

    tls_cert: str = env("", parse=pem_file, help="PEM certificate (chain) file: serve gRPC over TLS")
    tls_key: str = env("", parse=pem_file, help="PEM private key of <NAME>_TLS_CERT")
    tls_client_ca: str = env("", parse=pem_file, help="PEM CA: require client certificates it signed (mutual TLS)")

    def problems(self, prefix: str) -> list[str]:
        p = prefix.upper()
        out = []
        if bool(self.tls_cert) != bool(self.tls_key):
            out.append(f"{p}_TLS_CERT and {p}_TLS_KEY go together")
        if self.tls_client_ca and not self.tls_cert:
            out.append(f"{p}_TLS_CLIENT_CA (mutual TLS) needs {p}_TLS_CERT and {p}_TLS_KEY")
        return out

    def credentials(self) -> grpc.ServerCredentials | None:
        if not self.tls_cert:
            return None
        return grpc.ssl_server_credentials(
            [(_read(self.tls_key), _read(self.tls_cert))],
            root_certificates=_read(self.tls_client_ca),
            require_client_auth=bool(self.tls_client_ca))


@dataclass(frozen=True)
class ClientTls:
    """How every channel to our services is secured (shared variables, no service prefix)."""

    ca: str = env("", name="GRPC_TLS_CA", parse=pem_file,
                  help="PEM CA trusted for our services' certificates; set = channels use TLS")
    client_cert: str = env("", name="GRPC_TLS_CLIENT_CERT", parse=pem_file,
                           help="PEM client certificate presented to servers that require mutual TLS")
    client_key: str = env("", name="GRPC_TLS_CLIENT_KEY", parse=pem_file, help="PEM key of GRPC_TLS_CLIENT_CERT")
    server_name: str = env("", name="GRPC_TLS_SERVER_NAME",
                           help="name to check in servers' certificates instead of the dialled host")

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not self.ca:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca), private_key=_read(self.client_key),
            certificate_chain=_read(self.client_cert))

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.ca and self.server_name else []


def client_tls(environ: dict[str, str] | None = None) -> ClientTls:
    """The client settings from the environment (read each time: tests and CLIs change it)."""
    environ = dict(os.environ) if environ is None else environ
    keys = tuple(sorted((k, v) for k, v in environ.items() if k.startswith("GRPC_TLS_")))
    return _client_tls(keys)


@functools.lru_cache(maxsize=8)
def _client_tls(items: tuple[tuple[str, str], ...]) -> ClientTls:
    cfg = load(ClientTls, "", environ=dict(items))
    if bool(cfg.client_cert) != bool(cfg.client_key):
        raise ConfigError(["GRPC_TLS_CLIENT_CERT and GRPC_TLS_CLIENT_KEY go together"])
    if cfg.client_cert and not cfg.ca:
        raise ConfigError(["GRPC_TLS_CLIENT_CERT (mutual TLS) needs GRPC_TLS_CA"])
    return cfg
