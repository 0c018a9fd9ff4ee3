"""The SSRF guard for webhook targets: a name is resolved once, every address it resolves to
is checked, and the connection goes to the checked address (so DNS rebinding gains nothing)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack, AWS IPv6, ECS tasks, Azure wireserver, Alibaba).
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "169.254.170.2", "168.63.129.16", "100.100.100.200"))
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedAddress(Exception):
    """The target resolves to an address webhooks may not reach (a permanent failure)."""


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, IPv4-compatible), if any."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped or ip.sixtofour:
        return ip.ipv4_mapped or ip.sixtofour
    if ip in NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress) -> str | None:
    """What kind of non-public address `ip` is ("loopback", "private", …), or None when public."""
    inner = _embedded_ipv4(ip)
    if inner is not None:
        return refusal(inner)
    if ip in METADATA:
        return "cloud metadata"
    for kind, hit in (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
                      ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                      ("private", ip.is_private)):
        if hit:
            return kind
    return None if ip.is_global else "non-public"


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order (an IP literal is itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if ip not in seen:
            seen.append(ip)
    return seen


def checked(host: str, port: int) -> list[IPAddress]:
    """The addresses of `host`, or BlockedAddress naming the first one that is not public."""
    addresses = resolve(host, port)
    for ip in addresses:
        kind = refusal(ip)
        if kind:
            an = "an" if kind[0] in "aeiou" else "a"
            raise BlockedAddress(f"webhook URL resolves to {an} {kind} address ({ip})")
    return addresses


def url_problem(url: str, allow_private: bool = False) -> str | None:
    """Why `url` cannot be a webhook target, said of the URL ("must be…", "resolves to…"), else
    None. Checked when it is saved or typed in; a name that does not resolve now passes: the check
    that counts runs at every connection."""
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError:  # e.g. "http://[::1" or a port past 65535
        return "must be an http(s) URL with a valid host and port"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL"
    if allow_private:
        return None
    try:
        checked(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    except BlockedAddress as err:
        return str(err).removeprefix("webhook URL ")
    except (OSError, UnicodeError, ValueError):
        return None
    return None


class GuardedBackend(httpcore.SyncBackend):
    """Opens TCP connections only to checked addresses: one resolution per connection, and the
    socket goes to the very address that was checked (TLS still uses the URL's host for SNI)."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            addresses = checked(host, port)
        except (OSError, UnicodeError) as err:
            raise httpcore.ConnectError(f"could not resolve {host}: {err}") from err
        last: Exception | None = None
        for ip in addresses:
            try:
                return super().connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                last = err
        raise last or httpcore.ConnectError(f"no address for {host}")


def transport(limits: httpx.Limits, allow_private: bool = False) -> httpx.HTTPTransport:
    """httpx's transport whose connections go through GuardedBackend (unless private targets are
    allowed). The client using it must not take proxies from the environment (trust_env=False):
    a proxy would resolve the name itself, past the guard."""
    result = httpx.HTTPTransport(limits=limits)
    if not allow_private:
        # httpx has no public hook for the network backend; its pool is rebuilt with the same settings.
        result._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend())
    return result
