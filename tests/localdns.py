"""A small authoritative DNS server on loopback, for tests: TXT records from a dict,
over UDP and TCP (dnspython's message handling on asyncio). A name not in the zone is
NXDOMAIN; a name with no TXT record answers NOERROR with no answer."""

from __future__ import annotations

import asyncio
import struct

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class LocalDns:
    def __init__(self, txt: dict[str, list[list[str]]], names: set[str] | None = None) -> None:
        # name -> TXT records, each a list of strings (a long value split as a zone would)
        self.txt = {self._key(n): v for n, v in txt.items()}
        self.names = {self._key(n) for n in (names or set())} | set(self.txt)
        self.port = 0
        self.queries: list[str] = []
        self.truncated = 0  # UDP answers that said "ask over TCP"
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    @staticmethod
    def _key(name: str) -> str:
        return name.lower().rstrip(".") + "."

    def answer(self, wire: bytes, udp: bool = False) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        self.queries.append(name)
        if name not in self.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and name in self.txt:
            quoted = [" ".join(f'"{s}"' for s in strings) for strings in self.txt[name]]
            response.answer.append(dns.rrset.from_text_list(question.name, 300, "IN", "TXT", quoted))
        out = response.to_wire()
        # Its own UDP limit is 512 bytes whatever EDNS offers, as some servers' is.
        limit = min(query.payload if query.edns >= 0 else 512, 512)
        if udp and len(out) > limit:
            # Too big for the datagram: say so (TC), and the resolver asks again over TCP.
            self.truncated += 1
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA | dns.flags.TC
            out = response.to_wire()
        return out

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.transport.sendto(server.answer(data, udp=True), addr)  # type: ignore[attr-defined]

        async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    reply = self.answer(await reader.readexactly(size))
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
            except asyncio.IncompleteReadError:
                pass
            finally:
                writer.close()

        # One port for both: bind TCP first on a free port, then UDP on the same number.
        self._tcp = await asyncio.start_server(tcp, "127.0.0.1", 0)
        self.port = self._tcp.sockets[0].getsockname()[1]
        self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", self.port))
        return self.port

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"
