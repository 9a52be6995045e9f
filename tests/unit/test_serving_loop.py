"""The event loop the services run on lets aiokafka notice a broker connection that went away (issue 11,
stall time per partition).

aiokafka (0.14.0, aiokafka/conn.py `AIOKafkaConnection.send`) writes to its connection and catches only
`OSError`. Under uvloop a write to a transport that is already closed raises `RuntimeError` ("unable to
perform operation on <TCPTransport closed=True ...>; the handler is closed"): the consumer's coordination
routine dies with it and the consumer stops committing until some other member of the group triggers a
rebalance (aio-libs/aiokafka#1038, open). In `make faults` this left intake's cases.v1 partitions still
65 s after a Kafka restart, until a SIGTERM of another intake replica rebalanced the group. On asyncio's
own loop the write is ignored and the read that follows reports the lost connection, which aiokafka
handles.
"""

from __future__ import annotations

import asyncio

import uvicorn

from caseway_shared import serving


def _write_after_the_peer_closed() -> BaseException | None:
    """What writing to a connection the other end closed (and we saw close) raises, on the services' loop."""
    factory = uvicorn.Config(app=None, loop=serving.EVENT_LOOP).get_loop_factory()
    assert factory is not None

    async def scenario() -> BaseException | None:
        async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.read() == b""  # the peer hung up: the transport closes
        writer.transport.close()
        await asyncio.sleep(0.05)
        try:
            writer.write(b"\x00\x00\x00\x01x")  # what aiokafka's send does next
        except Exception as error:  # the point is which kind comes out
            return error
        finally:
            server.close()
            await server.wait_closed()
        return None

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(scenario())


def test_a_write_to_a_lost_connection_raises_nothing_aiokafka_does_not_handle() -> None:
    raised = _write_after_the_peer_closed()
    assert raised is None or isinstance(raised, OSError), f"{type(raised).__name__}: {raised}"


def test_the_check_fails_on_uvloop(monkeypatch) -> None:
    monkeypatch.setattr(serving, "EVENT_LOOP", "uvloop")
    assert isinstance(_write_after_the_peer_closed(), RuntimeError)
