"""TLS for evloop.Loop: Python ``ssl.SSLContext`` objects on evloop's TLS
(evloop-tls, over rustls).

A context is translated into a rustls configuration once (and again only
if its settings change): ``verify_mode``, ``check_hostname``,
``minimum_version``/``maximum_version`` (and ``OP_NO_TLSv1_2``/``_3``),
the CA certificates, the certificate chain and key, ALPN. Python cannot
read a chain, key, ALPN list or trusted non-CA certificate (a self-signed
server's) back out of a context, so importing evloop
wraps ``ssl.SSLContext.load_cert_chain``, ``set_alpn_protocols``,
``load_verify_locations`` and ``set_default_verify_paths`` to record them
(per context, weakly). What rustls cannot honour raises ``ValueError`` or
``NotImplementedError`` naming the setting.

``TLSTransportMixin`` gives a TLS transport asyncio's ``get_extra_info``
keys (``sslcontext``, ``ssl_object``, ``peercert``, ``cipher``,
``compression``); ``TLSMixin`` is ``loop.start_tls``.
"""

from __future__ import annotations

import functools
import os
import re
import ssl
import tempfile
import weakref

from . import _core

_TLS12, _TLS13 = 0x0303, 0x0304
# A name for rustls when there is none to verify (asyncio's
# server_hostname=''): not sent (no SNI) and not checked (check_hostname off).
_NO_NAME = "invalid"
# OpenSSL's hashed names in a capath directory ("5ad8a5d6.0").
_HASHED = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")


class _Record:
    """What evloop saw of one SSLContext, and its translations."""

    __slots__ = (
        "chain_pem",
        "key_pem",
        "password",
        "alpn",
        "capaths",
        "trusted_pem",
        "trusted_der",
        "generation",
        "configs",
    )

    def __init__(self):
        self.chain_pem = self.key_pem = None
        self.password = False
        self.alpn = []
        self.capaths = []
        # What load_verify_locations loaded from cafile/cadata, as loaded:
        # get_ca_certs() leaves out the certificates that are not CAs (a
        # trusted self-signed server certificate), which OpenSSL trusts all
        # the same.
        self.trusted_pem = []
        self.trusted_der = []
        self.generation = 0
        self.configs = {}


_records: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _record(context):
    record = _records.get(context)
    if record is None:
        record = _records[context] = _Record()
    return record


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _after_load_cert_chain(context, certfile, keyfile=None, password=None):
    record = _record(context)
    record.chain_pem = _read(certfile)
    record.key_pem = _read(keyfile if keyfile is not None else certfile)
    record.password = password is not None
    record.generation += 1


def _after_set_alpn_protocols(context, protocols):
    record = _record(context)
    record.alpn = [p.encode("ascii") if isinstance(p, str) else bytes(p) for p in protocols]
    record.generation += 1


def _split_der(data):
    """The DER certificates concatenated in ``data`` (``cadata`` as bytes);
    OpenSSL has parsed them already, so a short tail only ends the list."""
    data = bytes(data)
    certs = []
    while len(data) >= 2 and data[0] == 0x30:
        size, start = data[1], 2
        if size & 0x80:
            count = size & 0x7F
            size, start = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
        end = start + size
        if end > len(data):
            break
        certs.append(data[:end])
        data = data[end:]
    return certs


def _after_load_verify_locations(context, cafile=None, capath=None, cadata=None):
    record = _record(context)
    if cafile is not None:
        record.trusted_pem.append(_read(cafile))
    if capath is not None:
        record.capaths.append(os.fsdecode(capath))
    if isinstance(cadata, str):
        record.trusted_pem.append(cadata.encode("ascii"))
    elif cadata is not None:
        record.trusted_der.extend(_split_der(cadata))
    record.generation += 1


def _after_set_default_verify_paths(context):
    capath = ssl.get_default_verify_paths().capath
    if capath:
        _after_load_verify_locations(context, capath=capath)


def _wrap(name, after):
    """Makes ssl.SSLContext.<name> call ``after`` once it succeeded."""
    original = getattr(ssl.SSLContext, name)
    if getattr(original, "_evloop_records", False):
        return

    @functools.wraps(original)
    def method(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        after(self, *args, **kwargs)
        return result

    method._evloop_records = True
    setattr(ssl.SSLContext, name, method)


_wrap("load_cert_chain", _after_load_cert_chain)
_wrap("set_alpn_protocols", _after_set_alpn_protocols)
_wrap("load_verify_locations", _after_load_verify_locations)
_wrap("set_default_verify_paths", _after_set_default_verify_paths)


def _versions(context):
    """The TLS versions rustls may use under this context's settings."""
    low, high = context.minimum_version, context.maximum_version
    low_n = {ssl.TLSVersion.MINIMUM_SUPPORTED: 0, ssl.TLSVersion.MAXIMUM_SUPPORTED: _TLS13}.get(
        low, int(low)
    )
    high_n = {ssl.TLSVersion.MAXIMUM_SUPPORTED: _TLS13, ssl.TLSVersion.MINIMUM_SUPPORTED: 0}.get(
        high, int(high)
    )
    options = context.options
    allowed = [
        v
        for v, off in ((_TLS12, ssl.OP_NO_TLSv1_2), (_TLS13, ssl.OP_NO_TLSv1_3))
        if low_n <= v <= high_n and not options & off
    ]
    if not allowed:
        raise ValueError(
            f"SSLContext minimum_version={low.name}, maximum_version={high.name} "
            f"(and options): evloop's TLS (rustls) speaks TLS 1.2 and 1.3 only"
        )
    return allowed


def _capath_pems(capaths):
    pems = []
    for capath in capaths:
        try:
            names = sorted(os.listdir(capath))
        except OSError:
            continue
        for name in names:
            if _HASHED.match(name):
                try:
                    pems.append(_read(os.path.join(capath, name)))
                except OSError:
                    pass
    return pems


def _spec(context, record, server_side, sni):
    """The settings of ``context`` that the Rust side translates."""
    if record.password:
        raise NotImplementedError(
            "SSLContext.load_cert_chain(password=...): evloop's TLS (rustls) reads "
            "unencrypted PEM private keys only"
        )
    if server_side and record.chain_pem is None:
        raise ValueError(
            "server SSLContext: evloop never saw its certificate chain (was "
            "load_cert_chain() called before `import evloop`?)"
        )
    if server_side and context.sni_callback is not None:
        raise NotImplementedError(
            "SSLContext.sni_callback / set_servername_callback: not supported by evloop's TLS"
        )
    verify = context.verify_mode != ssl.CERT_NONE
    return {
        "verify_mode": int(context.verify_mode),
        "check_hostname": bool(context.check_hostname),
        "versions": _versions(context),
        "ca_der": context.get_ca_certs(binary_form=True) + record.trusted_der if verify else [],
        "ca_pem": _capath_pems(record.capaths) + record.trusted_pem if verify else [],
        "chain_pem": record.chain_pem,
        "key_pem": record.key_pem,
        "alpn": list(record.alpn),
        "sni": sni,
    }


def tls_config(context, server_side, sni=True):
    """The ``_core._TlsConfig`` of ``context`` (cached on it)."""
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(f"ssl argument must be an SSLContext or None, got {context!r}")
    record = _record(context)
    key = (
        server_side,
        sni,
        context.verify_mode,
        context.check_hostname,
        context.minimum_version,
        context.maximum_version,
        int(context.options),
        tuple(sorted(context.cert_store_stats().items())),
        record.generation,
    )
    config = record.configs.get(key)
    if config is None:
        config = _core.tls_config(server_side, _spec(context, record, server_side, sni))
        # Settings changed: the older translations are dead weight.
        record.configs = {key: config}
    return config


def check_timeouts(ssl_on, ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
    """asyncio's checks of the two TLS timeouts; returns them as a pair."""
    timeouts = {
        "ssl_handshake_timeout": ssl_handshake_timeout,
        "ssl_shutdown_timeout": ssl_shutdown_timeout,
    }
    for name, value in timeouts.items():
        if value is None:
            continue
        if not ssl_on:
            raise ValueError(f"{name} is only meaningful with ssl")
        if value <= 0:
            raise ValueError(f"{name} should be a positive number, got {value}")
    return ssl_handshake_timeout, ssl_shutdown_timeout


def client_name(context, server_hostname):
    """(name for rustls, send SNI) for a client's ``server_hostname``."""
    if server_hostname:
        return server_hostname, True
    if context.check_hostname:
        raise ValueError("check_hostname requires server_hostname")
    return _NO_NAME, False


def client_context(ssl_arg, server_hostname):
    """asyncio's ``ssl=True``: a default client context (no name check
    without a server_hostname)."""
    if ssl_arg is True:
        context = ssl.create_default_context()
        if not server_hostname:
            context.check_hostname = False
        return context
    return ssl_arg


# Cipher suites: rustls's IANA names as OpenSSL names them, and key bits.
_OPENSSL_TLS12 = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}


def _cipher(iana, version):
    if iana.startswith("TLS13_"):
        name = "TLS_" + iana[len("TLS13_") :]
    else:
        name = _OPENSSL_TLS12.get(iana, iana)
    bits = 128 if "AES_128" in iana else 256
    return name, version, bits


def _decode_der(der):
    """A certificate as ``SSLSocket.getpeercert()`` gives it: the ssl
    module's own decoder (``_ssl._test_decode_cert``) reads a PEM file."""
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(ssl.DER_cert_to_PEM_cert(der))
        return ssl._ssl._test_decode_cert(path)
    finally:
        os.unlink(path)


class SSLObject:
    """What asyncio callers use of ``ssl.SSLObject`` (``get_extra_info(
    'ssl_object')``), for an evloop TLS connection: the negotiated
    parameters as rustls reported them once the handshake was done."""

    def __init__(self, context, server_hostname, info):
        self.context = context
        self.server_side = bool(info["server_side"])
        self.server_hostname = server_hostname
        self._info = info
        self._decoded = None

    def __repr__(self):
        return f"<evloop._tls.SSLObject {self.version()} server_side={self.server_side}>"

    def _verified(self):
        return self.context.verify_mode != ssl.CERT_NONE

    def getpeercert(self, binary_form=False):
        """The peer's certificate: DER with ``binary_form``, else the decoded
        dict if it was verified, ``{}`` if not; None if the peer sent none."""
        certs = self._info["peer_certs"]
        if not certs:
            return None
        if binary_form:
            return certs[0]
        if not self._verified():
            return {}
        if self._decoded is None:
            self._decoded = _decode_der(certs[0])
        return self._decoded

    def cipher(self):
        """``(name, protocol version, secret bits)``, OpenSSL's names."""
        return _cipher(self._info["cipher"], self._info["version"])

    def shared_ciphers(self):
        """Not known (rustls does not report the client's list)."""
        return None

    def version(self):
        """``'TLSv1.3'`` or ``'TLSv1.2'``."""
        return self._info["version"]

    def selected_alpn_protocol(self):
        """The protocol ALPN agreed on, or None."""
        alpn = self._info["alpn"]
        return None if alpn is None else alpn.decode("ascii", "replace")

    def selected_npn_protocol(self):
        """None: NPN is not supported (as in OpenSSL 3)."""
        return None

    def compression(self):
        """None: TLS compression is never used."""
        return None

    def pending(self):
        """0: decrypted data is delivered at once."""
        return 0


_TLS_KEYS = frozenset(("sslcontext", "ssl_object", "peercert", "cipher", "compression"))


class TLSTransportMixin:
    """asyncio's TLS ``get_extra_info`` keys on a stream transport whose
    class defines ``_sslcontext``, ``_server_hostname`` and ``_ssl_object``
    slots and calls ``_init_tls``."""

    __slots__ = ()
    # As asyncio's (3.11+): TLS over TLS.
    _start_tls_compatible = True

    def _init_tls(self, sslcontext, server_hostname):
        self._sslcontext = sslcontext
        self._server_hostname = server_hostname
        info = self._core.tls_info()
        self._ssl_object = None if info is None else SSLObject(sslcontext, server_hostname, info)

    def get_extra_info(self, name, default=None):
        if name not in _TLS_KEYS:
            return super().get_extra_info(name, default)
        if name == "sslcontext":
            value = self._sslcontext
        elif self._ssl_object is None:
            value = None
        elif name == "ssl_object":
            value = self._ssl_object
        elif name == "peercert":
            value = self._ssl_object.getpeercert()
        elif name == "cipher":
            value = self._ssl_object.cipher()
        else:
            value = self._ssl_object.compression()
        return default if value is None else value


class TLSMixin:
    """``loop.start_tls`` for evloop.Loop."""

    async def start_tls(
        self,
        transport,
        protocol,
        sslcontext,
        *,
        server_side=False,
        server_hostname=None,
        ssl_handshake_timeout=None,
        ssl_shutdown_timeout=None,
    ):
        """Upgrade ``transport``'s connection to TLS; returns the new
        transport (``protocol`` gets the plaintext). The old transport now
        carries the TLS records and must not be used."""
        from ._net import SSLTransport, _await_core

        if not isinstance(sslcontext, ssl.SSLContext):
            raise TypeError(
                f"sslcontext is expected to be an instance of ssl.SSLContext, got {sslcontext!r}"
            )
        if not getattr(transport, "_start_tls_compatible", False):
            raise TypeError(f"transport {transport!r} is not supported by start_tls()")
        timeouts = check_timeouts(True, ssl_handshake_timeout, ssl_shutdown_timeout)
        if server_side:
            name, config = None, tls_config(sslcontext, True)
        else:
            name, sni = client_name(sslcontext, server_hostname)
            config = tls_config(sslcontext, False, sni)
        wrap = functools.partial(SSLTransport, sslcontext, server_hostname)
        try:
            new_transport = await _await_core(
                self,
                _core.start_tls,
                self,
                transport._core,
                protocol,
                wrap,
                config,
                server_hostname=name,
                ssl_handshake_timeout=timeouts[0],
                ssl_shutdown_timeout=timeouts[1],
            )
        except BaseException:
            # As asyncio: a failed (or cancelled) upgrade closes the
            # transport; its protocol is evloop-tls's, so the transport
            # hears no connection_lost to let go of its socket object.
            transport.close()
            transport._forget_socket()
            raise
        transport._hand_over(new_transport)
        return new_transport
