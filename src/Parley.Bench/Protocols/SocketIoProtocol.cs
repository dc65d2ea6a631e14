using System.Net.WebSockets;
using System.Text;

namespace Parley.Bench.Protocols;

/// <summary>
/// Socket.IO 4 over Engine.IO v4, WebSocket transport only, default namespace. The server opens with
/// <c>0{…}</c>; the client connects with <c>40</c> and gets <c>40{"sid":…}</c>. Emits with an ack id:
/// <c>42&lt;id&gt;["join",topic]</c> and <c>42&lt;id&gt;["publish",topic,body]</c>, acked by
/// <c>43&lt;id&gt;[true]</c>; deliveries are <c>42["msg",body]</c>. The server pings (<c>2</c>) every
/// pingInterval and the client answers <c>3</c>.
/// </summary>
internal sealed class SocketIoProtocol : IBenchProtocol
{
    private static readonly byte[] PongPacket = "3"u8.ToArray();

    public BenchTarget Target => BenchTarget.SocketIo;
    public bool Durable => false;
    public TimeSpan? HeartbeatInterval => null;
    public ReadOnlyMemory<byte> Heartbeat => ReadOnlyMemory<byte>.Empty;
    public ReadOnlyMemory<byte> Pong => PongPacket;

    public Uri SocketUri(Uri baseUrl) => new($"{ParleyProtocol.WsScheme(baseUrl)}://{baseUrl.Authority}/socket.io/?EIO=4&transport=websocket");

    public async Task HandshakeAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        var open = await HandshakeIo.ReceiveTextAsync(socket, cancellationToken);
        if (!open.StartsWith('0'))
        {
            throw new BenchRunException($"Socket.IO: expected the Engine.IO open packet, got {Cut(open)}");
        }
        await socket.SendAsync("40"u8.ToArray(), WebSocketMessageType.Text, true, cancellationToken);
        while (true)
        {
            var packet = await HandshakeIo.ReceiveTextAsync(socket, cancellationToken);
            if (packet.StartsWith("40", StringComparison.Ordinal))
            {
                return;
            }
            if (packet == "2")
            {
                await socket.SendAsync(PongPacket, WebSocketMessageType.Text, true, cancellationToken);
                continue;
            }
            throw new BenchRunException($"Socket.IO connect refused: {Cut(packet)}");
        }
    }

    // 42<id>["publish","<topic>","<body>"]
    public int Overhead(int topicLength) => 48 + topicLength;

    public int WriteJoin(Span<byte> destination, long id, ReadOnlySpan<byte> topic, JoinPosition? since)
    {
        if (since is not null)
        {
            throw new NotSupportedException("Socket.IO has no recovery");
        }
        var pos = 0;
        AsciiScan.Put(destination, ref pos, "42"u8);
        AsciiScan.Put(destination, ref pos, id);
        AsciiScan.Put(destination, ref pos, "[\"join\",\""u8);
        AsciiScan.Put(destination, ref pos, topic);
        AsciiScan.Put(destination, ref pos, "\"]"u8);
        return pos;
    }

    public int WritePublish(Span<byte> destination, long id, ReadOnlySpan<byte> topic, long joinId, int size, long timestamp)
    {
        var pos = 0;
        AsciiScan.Put(destination, ref pos, "42"u8);
        AsciiScan.Put(destination, ref pos, id);
        AsciiScan.Put(destination, ref pos, "[\"publish\",\""u8);
        AsciiScan.Put(destination, ref pos, topic);
        AsciiScan.Put(destination, ref pos, "\",\""u8);
        pos += BenchBody.Write(destination[pos..], size, timestamp);
        AsciiScan.Put(destination, ref pos, "\"]"u8);
        return pos;
    }

    public void Parse(ReadOnlySpan<byte> message, IFrameSink sink)
    {
        if (message.IsEmpty)
        {
            return;
        }
        switch (message[0])
        {
            case (byte)'2':
                sink.OnPing();
                return;
            case (byte)'1':
                sink.OnServerError("Engine.IO close packet");
                return;
            case (byte)'4' when message.Length >= 2:
                break;
            default:
                return;
        }
        var packet = message[2..];
        switch (message[1])
        {
            case (byte)'2' when packet.StartsWith("[\"msg\","u8):
                BenchBody.TryReadTimestamp(packet, out var sent);
                sink.OnDelivery(sent, -1, replay: false);
                break;
            case (byte)'3':
                var digits = packet.IndexOfAnyExceptInRange((byte)'0', (byte)'9');
                if (digits > 0 && AsciiScan.TryParseId(packet[..digits], out var id))
                {
                    var args = packet[digits..];
                    sink.OnReply(id, !args.StartsWith("[false"u8) && args.IndexOf("\"error\""u8) < 0, -1, args);
                }
                break;
            case (byte)'1':
                sink.OnServerError("Socket.IO disconnect packet");
                break;
            case (byte)'4':
                sink.OnServerError("Socket.IO connect_error: " + AsciiScan.Show(packet));
                break;
        }
    }

    public JoinReply ParseJoinReply(bool ok, ReadOnlySpan<byte> record) =>
        ok ? new JoinReply(true, -1, null, null, null) : new JoinReply(false, -1, null, null, ParseError(record).Reason);

    public ReplyError ParseError(ReadOnlySpan<byte> record) => new("ack " + AsciiScan.Show(record), 0);

    private static string Cut(string text) => text.Length > 200 ? text[..200] + "…" : text;
}

/// <summary>Reads whole text messages during a handshake (before the allocation-free receive loop starts).</summary>
internal static class HandshakeIo
{
    public static async Task<string> ReceiveTextAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[4096];
        using var text = new MemoryStream();
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer.AsMemory(), cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                throw new BenchRunException($"the server closed the socket during the handshake ({socket.CloseStatus} {socket.CloseStatusDescription})");
            }
            text.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return Encoding.UTF8.GetString(text.GetBuffer(), 0, (int)text.Length);
            }
            if (text.Length > 1024 * 1024)
            {
                throw new BenchRunException("handshake message over 1 MiB");
            }
        }
    }
}
