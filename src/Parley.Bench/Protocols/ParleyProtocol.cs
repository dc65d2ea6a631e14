using System.Net.WebSockets;
using System.Text;
using Parley.Protocol;

namespace Parley.Bench.Protocols;

/// <summary>
/// Phoenix Channels V2 JSON (docs/protocol.md): <c>[join_ref, ref, topic, event, payload]</c>.
/// Join <c>[id,id,topic,"phx_join",{"presence":false}]</c>; publish <c>[join_ref,id,topic,"msg",{"body":…}]</c>, acked by
/// <c>phx_reply</c> with the same ref once committed; deliveries are <c>msg</c> events (replays carry the
/// join's ref). Heartbeat <c>[null,"hb","phoenix","heartbeat",{}]</c> every 30 s.
/// </summary>
internal sealed class ParleyProtocol : IBenchProtocol
{
    private static readonly byte[] HeartbeatFrame = "[null,\"hb\",\"phoenix\",\"heartbeat\",{}]"u8.ToArray();

    public BenchTarget Target => BenchTarget.Parley;
    public bool Durable => true;
    public TimeSpan? HeartbeatInterval => TimeSpan.FromSeconds(30);
    public ReadOnlyMemory<byte> Heartbeat => HeartbeatFrame;
    public ReadOnlyMemory<byte> Pong => ReadOnlyMemory<byte>.Empty;

    public Uri SocketUri(Uri baseUrl) => new($"{WsScheme(baseUrl)}://{baseUrl.Authority}/socket/websocket?vsn=2.0.0");

    public Task HandshakeAsync(ClientWebSocket socket, CancellationToken cancellationToken) => Task.CompletedTask;

    // ["<join>","<id>","<topic>","msg",{"body":"<body>"}]
    public int Overhead(int topicLength) => 80 + topicLength;

    /// <summary>Writes <c>["joinRef","ref","topic</c> then <paramref name="rest"/> (closing quote, event, payload start).</summary>
    private static int WriteEnvelopeStart(Span<byte> destination, long joinRef, long @ref, ReadOnlySpan<byte> topic, ReadOnlySpan<byte> rest)
    {
        var pos = 0;
        AsciiScan.Put(destination, ref pos, "[\""u8);
        AsciiScan.Put(destination, ref pos, joinRef);
        AsciiScan.Put(destination, ref pos, "\",\""u8);
        AsciiScan.Put(destination, ref pos, @ref);
        AsciiScan.Put(destination, ref pos, "\",\""u8);
        AsciiScan.Put(destination, ref pos, topic);
        AsciiScan.Put(destination, ref pos, rest);
        return pos;
    }

    public int WriteJoin(Span<byte> destination, long id, ReadOnlySpan<byte> topic, JoinPosition? since)
    {
        // Untracked by presence: the peers track none, so the same job is measured.
        var pos = WriteEnvelopeStart(destination, id, id, topic, "\",\"phx_join\",{\"presence\":false"u8);
        if (since is { } position)
        {
            AsciiScan.Put(destination, ref pos, ",\"since\":"u8);
            AsciiScan.Put(destination, ref pos, position.Offset);
            if (position.Epoch is { } epoch)
            {
                AsciiScan.Put(destination, ref pos, ",\"epoch\":\""u8);
                AsciiScan.Put(destination, ref pos, Encoding.ASCII.GetBytes(epoch));
                AsciiScan.Put(destination, ref pos, "\""u8);
            }
        }
        AsciiScan.Put(destination, ref pos, "}]"u8);
        return pos;
    }

    public int WritePublish(Span<byte> destination, long id, ReadOnlySpan<byte> topic, long joinId, int size, long timestamp)
    {
        var pos = WriteEnvelopeStart(destination, joinId, id, topic, "\",\"msg\",{\"body\":\""u8);
        pos += BenchBody.Write(destination[pos..], size, timestamp);
        AsciiScan.Put(destination, ref pos, "\"}]"u8);
        return pos;
    }

    public void Parse(ReadOnlySpan<byte> message, IFrameSink sink)
    {
        if (message.Length < 2 || message[0] != (byte)'[')
        {
            return;
        }
        var pos = 1;
        if (!AsciiScan.NextStringOrNull(message, ref pos, out _, out var joinRefNull) ||
            !AsciiScan.NextStringOrNull(message, ref pos, out var @ref, out _) ||
            !AsciiScan.NextStringOrNull(message, ref pos, out var topic, out _) ||
            !AsciiScan.NextStringOrNull(message, ref pos, out var @event, out _))
        {
            return;
        }
        var payload = message[pos..];
        if (@event.SequenceEqual("msg"u8))
        {
            BenchBody.TryReadTimestamp(payload, out var sent);
            sink.OnDelivery(sent, AsciiScan.LongAfter(payload, "\"offset\":"u8), replay: !joinRefNull);
        }
        else if (@event.SequenceEqual("phx_reply"u8))
        {
            if (AsciiScan.TryParseId(@ref, out var id))
            {
                var ok = payload.IndexOf("\"status\":\"ok\""u8) >= 0;
                sink.OnReply(id, ok, ok ? AsciiScan.LongAfter(payload, "\"offset\":"u8) : -1, message);
            }
        }
        else if (@event.SequenceEqual("phx_close"u8) || @event.SequenceEqual("phx_error"u8))
        {
            sink.OnServerError($"{Encoding.UTF8.GetString(@event)} on {Encoding.UTF8.GetString(topic)}");
        }
    }

    public JoinReply ParseJoinReply(bool ok, ReadOnlySpan<byte> record)
    {
        if (!ok)
        {
            return new JoinReply(false, -1, null, null, ParseError(record).Reason);
        }
        var epoch = AsciiScan.StringAfter(record, "\"epoch\":\""u8);
        bool? recovered = record.IndexOf("\"recovered\":true"u8) >= 0 ? true
            : record.IndexOf("\"recovered\":false"u8) >= 0 ? false
            : null;
        return new JoinReply(true, AsciiScan.LongAfter(record, "\"offset\":"u8), epoch.IsEmpty ? null : Encoding.ASCII.GetString(epoch), recovered, null);
    }

    public ReplyError ParseError(ReadOnlySpan<byte> record)
    {
        var reason = AsciiScan.StringAfter(record, "\"reason\":\""u8);
        var text = reason.IsEmpty ? AsciiScan.Show(record) : Encoding.UTF8.GetString(reason);
        var detail = AsciiScan.StringAfter(record, "\"detail\":\""u8);
        if (!detail.IsEmpty)
        {
            text += ": " + Encoding.UTF8.GetString(detail);
        }
        return new ReplyError(text, text == ErrorReasons.RateLimited ? Math.Max(1, AsciiScan.LongAfter(record, "\"retry_after_ms\":"u8)) : 0);
    }

    internal static string WsScheme(Uri baseUrl) => baseUrl.Scheme is "https" or "wss" ? "wss" : "ws";
}
