"""Keeping the dev server local: which ``Host`` and ``Origin`` it answers, and the open-``--ip`` warning.

The API has no authentication, so two browser tricks must not reach it: DNS rebinding (a page
on ``evil.example`` whose name now resolves to 127.0.0.1 sends ``Host: evil.example``) and
cross-site simple requests (a ``text/plain`` POST from any page carries that page's
``Origin``). A request is answered only when its ``Host`` names this machine's loopback or
the bound address; a state-changing API request with an ``Origin`` must come from such a page.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ..workers_shim.http import Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def refusal(request: Request, bound_ip: str, port: int, *, api: bool) -> str | None:
    """Why ``request`` is refused (a 403 message), or ``None`` when it may be answered."""
    host = request.headers.get("host")
    # No Host at all cannot come from a browser (browsers always send it), so no rebinding.
    if host is not None and not local_host(host, bound_ip):
        return (f'refused: Host "{host}" is not this dev server, which answers only to '
                f"localhost, 127.0.0.1, [::1] or {bound_ip} (another name pointing here is how "
                f"DNS rebinding reaches local servers); open http://localhost:{port}/ instead")
    origin = request.headers.get("origin")
    if api and origin is not None and request.method not in SAFE_METHODS \
            and not local_origin(origin, bound_ip):
        return (f"refused: a {request.method} to the instance API from the page at {origin}; "
                "only pages served from this machine's loopback (or the bound address) may "
                "change instances, so other sites cannot drive it from your browser. Use the "
                "CLI, a script, or a page on localhost")
    return None


def local_host(host: str, bound_ip: str) -> bool:
    """True if ``host`` (a ``Host`` header, port optional) is loopback or ``bound_ip``."""
    name = _strip_port(str(host).strip().lower())
    if name is None:
        return False
    if name == "localhost" or name.endswith(".localhost") or name == bound_ip.lower():
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    # Bound to every interface, the machine's own addresses are the bound address; an IP
    # literal cannot be rebound, so any one is accepted there.
    return address.is_loopback or _is_wildcard(bound_ip)


def local_origin(origin: str, bound_ip: str) -> bool:
    """True if ``origin`` (an ``Origin`` header) is a page on loopback or on ``bound_ip``."""
    try:
        split = urlsplit(str(origin).strip())
    except ValueError:  # e.g. an unbalanced "[" in the authority
        return False
    return split.scheme in ("http", "https") and bool(split.netloc) \
        and local_host(split.netloc, bound_ip)


def exposure_warning(ip: str) -> str | None:
    """The warning to print when serving on ``ip`` exposes the API beyond this machine."""
    if local_host(ip if ":" not in ip else f"[{ip}]", "127.0.0.1"):
        return None
    return (f"serving on {ip}, not loopback: the instance APIs under /__workflows/api and "
            "/cdn-cgi/local/explorer/api have no authentication, so anyone who can reach this "
            "address on your network can create, terminate and delete instances (and call "
            "your Worker). Use --ip 127.0.0.1 unless that is what you want")


def _strip_port(host: str) -> str | None:
    """The name or address of a ``Host`` value without its ``:port``; ``None`` if malformed."""
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1:]
        if end < 0 or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
        return host[1:end]
    name, colon, port = host.rpartition(":")
    if not colon:
        return host
    return name if port.isdigit() and ":" not in name else None


def _is_wildcard(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_unspecified
    except ValueError:
        return False
