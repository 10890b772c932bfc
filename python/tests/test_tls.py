"""Tests of TLS on evloop.Loop (issue 13): ``ssl=`` on the connection and
server calls, ``loop.start_tls``, ``ssl.SSLContext`` translated to evloop's
TLS (rustls), the ``ssl`` module's errors, the TLS ``get_extra_info`` keys.

Certificates are CPython's own test certificates (``Lib/test/certdata``,
as ``test.test_asyncio.utils`` names them): ``SIGNED_CERTFILE`` is
``localhost``'s chain and key signed by the ``SIGNING_CA``;
``ONLYCERT``/``ONLYKEY`` a self-signed ``localhost`` certificate.
"""

import asyncio
import gc
import os
import socket
import ssl
import tempfile
import threading
import unittest
import warnings

import evloop
from evloop import _tls
from test.test_asyncio import utils as certs

PASSWORD_KEYCERT = os.path.join(os.path.dirname(certs.ONLYCERT), "keycert.passwd.pem")


def server_context(verify_client=False):
    """A server context serving localhost's CA-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.SIGNED_CERTFILE)
    if verify_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=certs.SIGNING_CA)
    return context


def client_context(cafile=certs.SIGNING_CA):
    """A client context trusting the test CA, checking host names."""
    return ssl.create_default_context(cafile=cafile)


class Echo(asyncio.Protocol):
    """Server side: writes back what it reads; records events."""

    def __init__(self, loop):
        self.events = []
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.events.append("eof")
        self.transport.write(b"bye")
        return True  # keep the write side open (half-close)

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        if not self.lost.done():
            self.lost.set_result(exc)


class Collect(asyncio.Protocol):
    """Client side: collects data; ``got`` resolves once ``expect`` bytes
    came, ``done`` on connection_lost."""

    def __init__(self, loop, expect=0):
        self.data = bytearray()
        self.events = []
        self.expect = expect
        self.got = loop.create_future()
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        self.data += data
        if len(self.data) >= self.expect and not self.got.done():
            self.got.set_result(bytes(self.data))

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        if not self.done.done():
            self.done.set_result(exc)


def first_cert_der(path):
    """The DER of the first certificate in a PEM file."""
    with open(path) as f:
        pem = f.read()
    start = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(pem[start:end])


def open_fds():
    return set(os.listdir("/proc/self/fd"))


class TlsTestCase(unittest.TestCase):
    def setUp(self):
        self.loop = evloop.new_event_loop()

    def tearDown(self):
        self.loop.close()

    def run_async(self, coro, timeout=15):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    async def echo_server(self, context=None, **kwargs):
        """An evloop TLS echo server on 127.0.0.1; returns (server, port, protocols)."""
        protocols = []

        def factory():
            protocols.append(Echo(self.loop))
            return protocols[-1]

        server = await self.loop.create_server(
            factory, "127.0.0.1", 0, ssl=context or server_context(), **kwargs
        )
        return server, server.sockets[0].getsockname()[1], protocols


class TestEcho(TlsTestCase):
    def test_echo_between_evloop_client_and_server(self):
        async def main():
            server, port, _ = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, 11),
                "127.0.0.1",
                port,
                ssl=client_context(),
                server_hostname="localhost",
            )
            transport.write(b"hello ")
            transport.writelines([bytearray(b"wor"), memoryview(b"ld")])
            echoed = await client.got
            self.assertIsInstance(transport, evloop.SSLTransport)
            transport.close()
            await client.done
            server.close()
            await server.wait_closed()
            return echoed, client.events

        echoed, events = self.run_async(main())
        self.assertEqual(echoed, b"hello world")
        self.assertEqual(events, ["made", ("lost", None)])

    def test_extra_info(self):
        async def main():
            context = client_context()
            server, port, protocols = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, 1), "127.0.0.1", port, ssl=context,
                server_hostname="localhost",
            )
            transport.write(b"x")
            await client.got
            info = {
                key: transport.get_extra_info(key)
                for key in ("sslcontext", "ssl_object", "peercert", "cipher", "compression",
                            "peername", "sockname")
            }
            server_object = protocols[0].transport.get_extra_info("ssl_object")
            server_peercert = protocols[0].transport.get_extra_info("peercert", "none")
            transport.close()
            await client.done
            server.close()
            return context, port, info, server_object, server_peercert

        context, port, info, server_object, server_peercert = self.run_async(main())
        self.assertIs(info["sslcontext"], context)
        sslobj = info["ssl_object"]
        self.assertFalse(sslobj.server_side)
        self.assertEqual(sslobj.server_hostname, "localhost")
        self.assertIs(sslobj.context, context)
        self.assertEqual(sslobj.version(), "TLSv1.3")
        self.assertIsNone(sslobj.selected_alpn_protocol())
        self.assertIsNone(info["compression"])
        name, version, bits = info["cipher"]
        self.assertTrue(name.startswith("TLS_"), name)
        self.assertEqual(version, "TLSv1.3")
        self.assertIn(bits, (128, 256))
        # Decoded as the ssl module decodes it (verified: the full dict).
        self.assertIn((("commonName", "localhost"),), info["peercert"]["subject"])
        self.assertEqual(info["peercert"]["subjectAltName"], (("DNS", "localhost"),))
        self.assertEqual(sslobj.getpeercert(binary_form=True), first_cert_der(certs.SIGNED_CERTFILE))
        self.assertEqual(info["peername"], ("127.0.0.1", port))
        self.assertEqual(info["sockname"][0], "127.0.0.1")
        # The server side: no client certificate, so no peercert.
        self.assertTrue(server_object.server_side)
        self.assertEqual(server_peercert, "none")

    def test_tls12_only(self):
        async def main():
            context = server_context()
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            server, port, _ = await self.echo_server(context)
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, 2), "127.0.0.1", port, ssl=client_context(),
                server_hostname="localhost",
            )
            transport.write(b"12")
            await client.got
            version = transport.get_extra_info("ssl_object").version()
            cipher = transport.get_extra_info("cipher")
            transport.close()
            await client.done
            server.close()
            return version, cipher

        version, cipher = self.run_async(main())
        self.assertEqual(version, "TLSv1.2")
        self.assertEqual(cipher[1], "TLSv1.2")
        self.assertIn("-", cipher[0])  # OpenSSL's name, e.g. ECDHE-RSA-AES256-GCM-SHA384

    def test_streams(self):
        async def handle(reader, writer):
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()

        async def main():
            server = await asyncio.start_server(
                handle, "127.0.0.1", 0, ssl=server_context()
            )
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context(), server_hostname="localhost"
            )
            writer.write(b"streams over tls\n")
            answer = await reader.readline()
            rest = await reader.read()
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return answer, rest

        self.assertEqual(self.run_async(main()), (b"STREAMS OVER TLS\n", b""))

    def test_unix_server_and_connection(self):
        async def main(path):
            server = await self.loop.create_unix_server(
                lambda: Echo(self.loop), path, ssl=server_context()
            )
            transport, client = await self.loop.create_unix_connection(
                lambda: Collect(self.loop, 4), path, ssl=client_context(),
                server_hostname="localhost",
            )
            transport.write(b"unix")
            echoed = await client.got
            transport.close()
            await client.done
            server.close()
            await server.wait_closed()
            return echoed

        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(self.run_async(main(os.path.join(tmp, "s"))), b"unix")

    def test_connect_accepted_socket_serves_tls(self):
        async def main():
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.setblocking(False)
            port = listener.getsockname()[1]
            connect = asyncio.ensure_future(
                self.loop.create_connection(
                    lambda: Collect(self.loop, 8), "127.0.0.1", port, ssl=client_context(),
                    server_hostname="localhost",
                )
            )
            accepted, _ = await self.loop.sock_accept(listener)
            listener.close()
            server_side, echo = await self.loop.connect_accepted_socket(
                lambda: Echo(self.loop), accepted, ssl=server_context()
            )
            transport, client = await connect
            transport.write(b"accepted")
            echoed = await client.got
            transport.close()
            await client.done
            await echo.lost
            return echoed, server_side.get_extra_info("ssl_object").server_side

        self.assertEqual(self.run_async(main()), (b"accepted", True))

    def test_fds_closed(self):
        async def cycle():
            server, port, _ = await self.echo_server()
            for _ in range(3):
                transport, client = await self.loop.create_connection(
                    lambda: Collect(self.loop, 1), "127.0.0.1", port, ssl=client_context(),
                    server_hostname="localhost",
                )
                transport.get_extra_info("socket")
                transport.write(b"x")
                await client.got
                transport.close()
                await client.done
            server.close()
            await server.wait_closed()

        self.run_async(cycle())  # warm up (resolver, executor threads)
        before = open_fds()
        self.run_async(cycle())
        self.assertEqual(open_fds() - before, set())


class PythonPeer:
    """The other side run by Python's ssl module in a thread, on a
    blocking socket: ``run(sock)`` gets the wrapped socket."""

    def __init__(self, run):
        self.run = run
        self.error = None
        self.result = None

    def start(self, target, *args):
        self.thread = threading.Thread(target=self._main, args=(target, *args))
        self.thread.start()

    def _main(self, target, *args):
        try:
            self.result = target(*args)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self):
        self.thread.join(15)
        if self.error is not None:
            raise self.error
        return self.result


class TestPythonPeer(TlsTestCase):
    def test_evloop_client_python_server(self):
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]

        def serve():
            with listener:
                conn, _ = listener.accept()
            with server_context().wrap_socket(conn, server_side=True) as tls:
                data = tls.recv(1024)
                tls.sendall(data[::-1])
                return data, tls.version()

        peer = PythonPeer(None)
        peer.start(serve)

        async def main():
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, 6), "127.0.0.1", port, ssl=client_context(),
                server_hostname="localhost",
            )
            transport.write(b"python")
            echoed = await client.got
            transport.close()
            await client.done
            return echoed

        self.assertEqual(self.run_async(main()), b"nohtyp")
        self.assertEqual(peer.join(), (b"python", "TLSv1.3"))

    def test_python_client_evloop_server_with_client_certificate(self):
        async def main():
            server, port, protocols = await self.echo_server(server_context(verify_client=True))

            def client():
                context = client_context()
                context.load_cert_chain(certs.SIGNED_CERTFILE)
                with socket.create_connection(("127.0.0.1", port)) as raw:
                    with context.wrap_socket(raw, server_hostname="localhost") as tls:
                        tls.sendall(b"ping")
                        return tls.recv(1024)

            echoed = await self.loop.run_in_executor(None, client)
            await protocols[0].lost
            peercert = protocols[0].transport.get_extra_info("peercert")
            server.close()
            await server.wait_closed()
            return echoed, peercert

        echoed, peercert = self.run_async(main())
        self.assertEqual(echoed, b"ping")
        # A verified client certificate, decoded.
        self.assertIn((("commonName", "localhost"),), peercert["subject"])

    def test_server_refuses_client_without_certificate(self):
        async def main():
            server, port, protocols = await self.echo_server(server_context(verify_client=True))

            def client():
                with socket.create_connection(("127.0.0.1", port)) as raw:
                    with client_context().wrap_socket(raw, server_hostname="localhost") as tls:
                        tls.sendall(b"ping")
                        return tls.recv(1024)

            with self.assertRaises((ssl.SSLError, ConnectionError)):
                await self.loop.run_in_executor(None, client)
            server.close()
            await server.wait_closed()
            return protocols

        # The handshake never completed: no protocol saw a connection.
        protocols = self.run_async(main())
        self.assertTrue(all("eof" not in p.events for p in protocols))


class TestVerification(TlsTestCase):
    def connect(self, context, server_hostname="localhost", server_ctx=None):
        async def main():
            server, port, _ = await self.echo_server(server_ctx)
            try:
                transport, client = await self.loop.create_connection(
                    lambda: Collect(self.loop, 1), "127.0.0.1", port, ssl=context,
                    server_hostname=server_hostname,
                )
                transport.write(b"!")
                await client.got
                peercert = transport.get_extra_info("peercert")
                der = transport.get_extra_info("ssl_object").getpeercert(True)
                transport.close()
                await client.done
                return peercert, der
            finally:
                server.close()
                await server.wait_closed()

        return self.run_async(main())

    def test_unknown_ca_fails(self):
        with self.assertRaisesRegex(ssl.SSLError, "(?i)certificate.verify.failed") as caught:
            self.connect(ssl.create_default_context())
        self.assertIsInstance(caught.exception, ssl.SSLCertVerificationError)
        self.assertEqual(caught.exception.verify_code, 20)
        self.assertEqual(caught.exception.reason, "CERTIFICATE_VERIFY_FAILED")

    def test_self_signed_fails_then_passes_when_trusted(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs.ONLYCERT, certs.ONLYKEY)
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.connect(client_context(), server_ctx=context)
        peercert, _ = self.connect(client_context(cafile=certs.ONLYCERT), server_ctx=context)
        self.assertIn((("commonName", "localhost"),), peercert["subject"])

    def test_self_signed_trusted_through_cadata(self):
        # As cafile: a non-CA certificate is trusted too (get_ca_certs()
        # does not list it); bytes are DER, several concatenated.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs.ONLYCERT, certs.ONLYKEY)
        der = first_cert_der(certs.SIGNING_CA) + first_cert_der(certs.ONLYCERT)
        for cadata in (ssl.DER_cert_to_PEM_cert(first_cert_der(certs.ONLYCERT)), der):
            with self.subTest(type=type(cadata).__name__):
                client = ssl.create_default_context(cadata=cadata)
                peercert, _ = self.connect(client, server_ctx=context)
                self.assertIn((("commonName", "localhost"),), peercert["subject"])

    def test_hostname_mismatch(self):
        with self.assertRaisesRegex(
            ssl.SSLCertVerificationError,
            "Hostname mismatch, certificate is not valid for 'example.com'",
        ):
            self.connect(client_context(), server_hostname="example.com")

    def test_no_hostname_check(self):
        context = client_context()
        context.check_hostname = False
        peercert, _ = self.connect(context, server_hostname="example.com")
        self.assertIn((("commonName", "localhost"),), peercert["subject"])
        # The chain is still checked.
        context = ssl.create_default_context()
        context.check_hostname = False
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.connect(context, server_hostname="example.com")

    def test_cert_none_accepts_anything(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        peercert, der = self.connect(context, server_hostname="")
        # Not verified: {} (as SSLObject.getpeercert), the DER still there.
        self.assertEqual(peercert, {})
        self.assertIsInstance(der, bytes)
        self.assertEqual(der[:1], b"\x30")

    def test_ssl_true_is_a_default_context(self):
        with self.assertRaisesRegex(ssl.SSLError, "(?i)certificate.verify.failed"):
            self.connect(True)


class TestAlpn(TlsTestCase):
    def test_alpn_agreed(self):
        async def main():
            sctx = server_context()
            sctx.set_alpn_protocols(["h2", "http/1.1"])
            server, port, protocols = await self.echo_server(sctx)
            cctx = client_context()
            cctx.set_alpn_protocols(["http/1.1"])
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, 1), "127.0.0.1", port, ssl=cctx,
                server_hostname="localhost",
            )
            transport.write(b"a")
            await client.got
            chosen = (
                transport.get_extra_info("ssl_object").selected_alpn_protocol(),
                protocols[0].transport.get_extra_info("ssl_object").selected_alpn_protocol(),
            )
            transport.close()
            await client.done
            server.close()
            return chosen

        self.assertEqual(self.run_async(main()), ("http/1.1", "http/1.1"))

    def test_config_cached_until_settings_change(self):
        context = client_context()
        first = _tls.tls_config(context, False)
        self.assertIs(_tls.tls_config(context, False), first)
        context.set_alpn_protocols(["h2"])
        second = _tls.tls_config(context, False)
        self.assertIsNot(second, first)
        self.assertIs(_tls.tls_config(context, False), second)
        context.check_hostname = False
        self.assertIsNot(_tls.tls_config(context, False), second)


class TestStartTls(TlsTestCase):
    def test_starttls_both_sides(self):
        async def handle(reader, writer):
            self.assertEqual(await reader.readline(), b"STARTTLS\n")
            writer.write(b"GO\n")
            await writer.drain()
            await writer.start_tls(server_context())
            line = await reader.readline()
            writer.write(line[:-1][::-1] + b"\n")
            await writer.drain()
            over_tls = writer.get_extra_info("ssl_object") is not None
            writer.close()
            return over_tls

        results = []

        async def server_handler(reader, writer):
            results.append(await handle(reader, writer))

        async def main():
            server = await asyncio.start_server(server_handler, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            plain = writer.transport
            writer.write(b"STARTTLS\n")
            self.assertEqual(await reader.readline(), b"GO\n")
            await writer.start_tls(client_context(), server_hostname="localhost")
            self.assertIsNot(writer.transport, plain)
            writer.write(b"secret")
            writer.write(b"\n")
            answer = await reader.readline()
            version = writer.get_extra_info("ssl_object").version()
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
            return answer, version

        answer, version = self.run_async(main())
        self.assertEqual(answer, b"terces\n")
        self.assertEqual(version, "TLSv1.3")
        self.assertEqual(results, [True])

    def test_argument_errors(self):
        async def main():
            server, port, _ = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop), "127.0.0.1", port, ssl=client_context(),
                server_hostname="localhost",
            )
            errors = []
            for call in (
                lambda: self.loop.start_tls(transport, client, object()),
                lambda: self.loop.start_tls(object(), client, client_context()),
                lambda: self.loop.start_tls(
                    transport, client, client_context(), ssl_handshake_timeout=0
                ),
            ):
                try:
                    await call()
                except Exception as exc:
                    errors.append((type(exc), str(exc)))
            transport.close()
            await client.done
            server.close()
            return errors

        errors = self.run_async(main())
        self.assertEqual(errors[0][0], TypeError)
        self.assertIn("sslcontext is expected to be an instance of ssl.SSLContext", errors[0][1])
        self.assertEqual(errors[1][0], TypeError)
        self.assertIn("is not supported by start_tls()", errors[1][1])
        self.assertEqual(
            errors[2], (ValueError, "ssl_handshake_timeout should be a positive number, got 0")
        )

    def test_upgraded_and_failed_transports_do_not_warn(self):
        # The plain transport under a TLS one is closed with it, and one
        # whose upgrade failed is closed by start_tls: neither is an
        # "unclosed transport" when collected, and their socket objects
        # (get_extra_info('socket')) are closed.
        async def main():
            server, port, _ = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, 2), "127.0.0.1", port
            )
            transport.get_extra_info("socket")
            tls = await self.loop.start_tls(
                transport, client, client_context(), server_hostname="localhost"
            )
            tls.write(b"ok")
            await client.got
            tls.close()
            await client.done
            plain_server = await self.loop.create_server(lambda: Echo(self.loop), "127.0.0.1", 0)
            port = plain_server.sockets[0].getsockname()[1]
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop), "127.0.0.1", port
            )
            transport.get_extra_info("socket")
            with self.assertRaises(ssl.SSLError):
                await self.loop.start_tls(
                    transport, client, client_context(), server_hostname="localhost"
                )
            await client.done
            for s in (server, plain_server):
                s.close()
                await s.wait_closed()

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            self.run_async(main())
            gc.collect()
        self.assertEqual([str(w.message) for w in caught if w.category is ResourceWarning], [])

    def test_start_tls_failure_closes(self):
        async def main():
            # A plain echo server: the ClientHello comes back, not a ServerHello.
            server = await self.loop.create_server(lambda: Echo(self.loop), "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop), "127.0.0.1", port
            )
            with self.assertRaises(ssl.SSLError):
                await self.loop.start_tls(
                    transport, client, client_context(), server_hostname="localhost"
                )
            await client.done
            server.close()
            return transport.is_closing()

        self.assertTrue(self.run_async(main()))


class TestClosing(TlsTestCase):
    def test_client_close_and_abort(self):
        async def main():
            server, port, protocols = await self.echo_server()
            outcomes = []
            for how in ("close", "abort"):
                transport, client = await self.loop.create_connection(
                    lambda: Collect(self.loop, 1), "127.0.0.1", port, ssl=client_context(),
                    server_hostname="localhost",
                )
                transport.write(b"x")
                await client.got
                getattr(transport, how)()
                self.assertTrue(transport.is_closing())
                outcomes.append((await client.done, await protocols[-1].lost))
            server.close()
            return outcomes, protocols

        outcomes, protocols = self.run_async(main())
        # close: close_notify both ways, no error anywhere.
        self.assertEqual(outcomes[0], (None, None))
        self.assertIn("eof", protocols[0].events)
        # abort: no error on our side; the server sees a TCP EOF without
        # close_notify, which is an EOF all the same (as asyncio's SSL
        # transport has it), then the end, although its eof_received
        # asked to stay open: no close_notify goes to the vanished peer, so
        # no error either.
        self.assertIsNone(outcomes[1][0])
        self.assertEqual(protocols[1].events, ["eof", ("lost", None)])

    def test_half_close(self):
        async def main():
            server, port, protocols = await self.echo_server()
            transport, client = await self.loop.create_connection(
                lambda: Collect(self.loop, 7), "127.0.0.1", port, ssl=client_context(),
                server_hostname="localhost",
            )
            self.assertTrue(transport.can_write_eof())
            transport.write(b"half")
            transport.write_eof()
            # The server got EOF (close_notify), wrote "bye" and is still open.
            data = await client.got
            server_events = list(protocols[0].events)
            transport.close()
            await client.done
            server.close()
            return data, server_events

        data, server_events = self.run_async(main())
        self.assertEqual(data, b"halfbye")
        self.assertEqual(server_events, ["eof"])

    def test_handshake_timeout(self):
        async def main():
            # Accepts TCP, never speaks TLS.
            listener = socket.create_server(("127.0.0.1", 0))
            port = listener.getsockname()[1]
            try:
                with self.assertRaisesRegex(
                    ConnectionAbortedError, r"SSL handshake.*is taking longer"
                ):
                    await self.loop.create_connection(
                        asyncio.Protocol, "127.0.0.1", port, ssl=client_context(),
                        server_hostname="localhost", ssl_handshake_timeout=0.2,
                    )
            finally:
                listener.close()

        self.run_async(main())


class TestErrors(TlsTestCase):
    def assert_create_server_fails(self, context, error, pattern):
        with self.assertRaisesRegex(error, pattern):
            self.run_async(self.loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=context))

    def test_server_context_without_recorded_chain(self):
        self.assert_create_server_fails(
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), ValueError, "load_cert_chain"
        )

    def test_encrypted_key(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(PASSWORD_KEYCERT, password="somepass")
        self.assert_create_server_fails(context, NotImplementedError, "password")

    def test_old_versions_only(self):
        context = server_context()
        with self.assertWarns(DeprecationWarning):
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        self.assert_create_server_fails(context, ValueError, "TLS 1.2 and 1.3 only")

    def test_sni_callback(self):
        context = server_context()
        context.sni_callback = lambda *args: None
        self.assert_create_server_fails(context, NotImplementedError, "sni_callback")

    def test_client_cert_verification_needs_cas(self):
        context = server_context()
        context.verify_mode = ssl.CERT_REQUIRED
        self.assert_create_server_fails(context, ValueError, "CA certificates")

    def test_argument_checks(self):
        async def call(coro):
            try:
                await coro
            except Exception as exc:
                return type(exc), str(exc)

        loop = self.loop
        unconnected = socket.socket()
        self.addCleanup(unconnected.close)
        cases = [
            (loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=True), TypeError,
             "ssl argument must be an SSLContext or None"),
            (loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, server_hostname="x"),
             ValueError, "server_hostname is only meaningful with ssl"),
            (loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, ssl_handshake_timeout=1),
             ValueError, "ssl_handshake_timeout is only meaningful with ssl"),
            (loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, ssl=client_context(),
                                    ssl_shutdown_timeout=-1),
             ValueError, "ssl_shutdown_timeout should be a positive number, got -1"),
            (loop.create_connection(asyncio.Protocol, sock=unconnected, ssl=True),
             ValueError, "You must set server_hostname when using ssl without a host"),
            (loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, ssl=client_context(),
                                    server_hostname=""),
             ValueError, "check_hostname requires server_hostname"),
            (loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, ssl="yes"),
             TypeError, "ssl argument must be an SSLContext or None, got 'yes'"),
        ]
        for coro, error, message in cases:
            with self.subTest(message=message):
                self.assertEqual(self.run_async(call(coro)), (error, message))


if __name__ == "__main__":
    unittest.main()
