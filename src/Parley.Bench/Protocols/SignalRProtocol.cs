using System.Net.WebSockets;
using System.Text;

namespace Parley.Bench.Protocols;

/// <summary>
/// ASP.NET Core SignalR JSON hub protocol over a WebSocket at <c>/hub</c> (negotiation skipped). Records end
/// with 0x1E and several may share one WebSocket message. Handshake <c>{"protocol":"json","version":1}</c> →
/// <c>{}</c>. Join and publish are invocations of <c>Join(channel)</c> and <c>Publish(channel, body)</c>,
/// completed by <c>{"type":3,"invocationId":…,"result":true}</c>; deliveries are invocations of
/// <c>msg(body)</c>. The client pings (<c>{"type":6}</c>) every 15 s (the server's timeout is 30 s).
/// </summary>
internal sealed class SignalRProtocol : IBenchProtocol
{
    private const byte RecordSeparator = 0x1E;
    private static readonly byte[] PingRecord = "{\"type\":6}\u001e"u8.ToArray();

    public BenchTarget Target => BenchTarget.SignalR;
    public bool Durable => false;
    public TimeSpan? HeartbeatInterval => TimeSpan.FromSeconds(15);
    public ReadOnlyMemory<byte> Heartbeat => PingRecord;
    public ReadOnlyMemory<byte> Pong => ReadOnlyMemory<byte>.Empty;

    public Uri SocketUri(Uri baseUrl) => new($"{ParleyProtocol.WsScheme(baseUrl)}://{baseUrl.Authority}/hub");

    public async Task HandshakeAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        await socket.SendAsync("{\"protocol\":\"json\",\"version\":1}\u001e"u8.ToArray(), WebSocketMessageType.Text, true, cancellationToken);
        var reply = await HandshakeIo.ReceiveTextAsync(socket, cancellationToken);
        var end = reply.IndexOf((char)RecordSeparator, StringComparison.Ordinal);
        var record = end < 0 ? reply : reply[..end];
        if (record != "{}")
        {
            throw new BenchRunException($"SignalR handshake refused: {record}");
        }
    }

    // {"type":1,"invocationId":"<id>","target":"Publish","arguments":["<topic>","<body>"]}\x1e
    public int Overhead(int topicLength) => 100 + topicLength;

    public int WriteJoin(Span<byte> destination, long id, ReadOnlySpan<byte> topic, JoinPosition? since)
    {
        if (since is not null)
        {
            throw new NotSupportedException("SignalR has no recovery");
        }
        var pos = 0;
        AsciiScan.Put(destination, ref pos, "{\"type\":1,\"invocationId\":\""u8);
        AsciiScan.Put(destination, ref pos, id);
        AsciiScan.Put(destination, ref pos, "\",\"target\":\"Join\",\"arguments\":[\""u8);
        AsciiScan.Put(destination, ref pos, topic);
        AsciiScan.Put(destination, ref pos, "\"]}\u001e"u8);
        return pos;
    }

    public int WritePublish(Span<byte> destination, long id, ReadOnlySpan<byte> topic, long joinId, int size, long timestamp)
    {
        var pos = 0;
        AsciiScan.Put(destination, ref pos, "{\"type\":1,\"invocationId\":\""u8);
        AsciiScan.Put(destination, ref pos, id);
        AsciiScan.Put(destination, ref pos, "\",\"target\":\"Publish\",\"arguments\":[\""u8);
        AsciiScan.Put(destination, ref pos, topic);
        AsciiScan.Put(destination, ref pos, "\",\""u8);
        pos += BenchBody.Write(destination[pos..], size, timestamp);
        AsciiScan.Put(destination, ref pos, "\"]}\u001e"u8);
        return pos;
    }

    public void Parse(ReadOnlySpan<byte> message, IFrameSink sink)
    {
        while (!message.IsEmpty)
        {
            var end = message.IndexOf(RecordSeparator);
            var record = end < 0 ? message : message[..end];
            message = end < 0 ? default : message[(end + 1)..];
            if (!record.IsEmpty)
            {
                ParseRecord(record, sink);
            }
        }
    }

    private static void ParseRecord(ReadOnlySpan<byte> record, IFrameSink sink)
    {
        switch (AsciiScan.LongAfter(record, "\"type\":"u8))
        {
            case 1 when record.IndexOf("\"target\":\"msg\""u8) >= 0:
                BenchBody.TryReadTimestamp(record, out var sent);
                sink.OnDelivery(sent, -1, replay: false);
                break;
            case 3:
                if (AsciiScan.TryParseId(AsciiScan.StringAfter(record, "\"invocationId\":\""u8), out var id))
                {
                    sink.OnReply(id, record.IndexOf("\"error\":"u8) < 0, -1, record);
                }
                break;
            case 7:
                var error = AsciiScan.StringAfter(record, "\"error\":\""u8);
                sink.OnServerError("SignalR close" + (error.IsEmpty ? "" : ": " + Encoding.UTF8.GetString(error)));
                break;
        }
    }

    public JoinReply ParseJoinReply(bool ok, ReadOnlySpan<byte> record) =>
        ok ? new JoinReply(true, -1, null, null, null) : new JoinReply(false, -1, null, null, ParseError(record).Reason);

    public ReplyError ParseError(ReadOnlySpan<byte> record)
    {
        var error = AsciiScan.StringAfter(record, "\"error\":\""u8);
        return new ReplyError(error.IsEmpty ? AsciiScan.Show(record) : Encoding.UTF8.GetString(error), 0);
    }
}
