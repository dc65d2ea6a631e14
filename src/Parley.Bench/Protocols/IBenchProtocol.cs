using System.Net.WebSockets;

namespace Parley.Bench.Protocols;

/// <summary>
/// One wire format, reduced to what the load generator needs: where to connect, the opening handshake,
/// how to write a join, a publish and a heartbeat, and how to recognise deliveries and replies in a
/// received WebSocket message. Everything else (sockets, windows, timing, counting) is shared, so the
/// client's cost is the same whichever server is measured.
/// </summary>
/// <remarks>
/// Ids: joins and publishes carry a decimal id chosen by the bench (Phoenix <c>ref</c>, SignalR
/// <c>invocationId</c>, Socket.IO ack id) and every reply is reported with it.
/// </remarks>
internal interface IBenchProtocol
{
    BenchTarget Target { get; }

    /// <summary>True when an ack means the message was committed to durable history.</summary>
    bool Durable { get; }

    /// <summary>The WebSocket URL for a server whose base URL is <paramref name="baseUrl"/> (only scheme, host and port are used).</summary>
    Uri SocketUri(Uri baseUrl);

    /// <summary>Runs the protocol's opening exchange on a fresh socket, before the receive loop starts.</summary>
    Task HandshakeAsync(ClientWebSocket socket, CancellationToken cancellationToken);

    /// <summary>How often the client must send <see cref="Heartbeat"/>; null when the server drives keep-alive.</summary>
    TimeSpan? HeartbeatInterval { get; }

    /// <summary>The client heartbeat message (empty when <see cref="HeartbeatInterval"/> is null).</summary>
    ReadOnlyMemory<byte> Heartbeat { get; }

    /// <summary>The answer to a server ping reported by <see cref="IFrameSink.OnPing"/>.</summary>
    ReadOnlyMemory<byte> Pong { get; }

    /// <summary>Bytes a publish adds around its body for a topic of <paramref name="topicLength"/> bytes (an upper bound).</summary>
    int Overhead(int topicLength);

    /// <summary>Writes a join of <paramref name="topic"/> with id <paramref name="id"/>; <paramref name="since"/> asks for recovery (parley only).</summary>
    int WriteJoin(Span<byte> destination, long id, ReadOnlySpan<byte> topic, JoinPosition? since);

    /// <summary>Writes a publish with id <paramref name="id"/> on a topic joined with <paramref name="joinId"/>, its body stamped with <paramref name="timestamp"/>.</summary>
    int WritePublish(Span<byte> destination, long id, ReadOnlySpan<byte> topic, long joinId, int size, long timestamp);

    /// <summary>Reports every delivery, reply and ping in one received WebSocket text message to <paramref name="sink"/>.</summary>
    void Parse(ReadOnlySpan<byte> message, IFrameSink sink);

    /// <summary>Details of a reply to a join (called rarely; may allocate).</summary>
    JoinReply ParseJoinReply(bool ok, ReadOnlySpan<byte> record);

    /// <summary>Why a publish or join was refused (called rarely; may allocate).</summary>
    ReplyError ParseError(ReadOnlySpan<byte> record);
}

/// <summary>What the protocol adapters report from received messages. Called on the connection's receive loop.</summary>
internal interface IFrameSink
{
    /// <summary>A delivered message; <paramref name="sentTimestamp"/> is 0 when the body had no timestamp, <paramref name="offset"/> -1 when the protocol has none, <paramref name="replay"/> true for a recovery replay.</summary>
    void OnDelivery(long sentTimestamp, long offset, bool replay);

    /// <summary>A reply to the join or publish with id <paramref name="id"/>; <paramref name="offset"/> is the stored offset of an ok publish (parley) or -1.</summary>
    void OnReply(long id, bool ok, long offset, ReadOnlySpan<byte> record);

    /// <summary>The server pinged and wants <see cref="IBenchProtocol.Pong"/>.</summary>
    void OnPing();

    /// <summary>The server closed a channel or the session (e.g. <c>phx_close</c>, a SignalR close, a Socket.IO disconnect).</summary>
    void OnServerError(string message);
}

/// <summary>Where a recovering join resumes: after <paramref name="Offset"/> of history <paramref name="Epoch"/>.</summary>
internal readonly record struct JoinPosition(long Offset, string? Epoch);

/// <summary>A join reply: parley reports the head offset, the epoch and (with <c>since</c>) whether it recovered.</summary>
internal readonly record struct JoinReply(bool Ok, long Offset, string? Epoch, bool? Recovered, string? Error);

/// <summary>A refused push: the reason and, for <c>rate_limited</c>, when to retry.</summary>
internal readonly record struct ReplyError(string Reason, long RetryAfterMs);
