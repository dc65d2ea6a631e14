using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Parley.Server.Tests.Infrastructure;

/// <summary>A frame read from the hub.</summary>
public sealed record ServerFrame(byte Opcode, byte[] Payload)
{
    public string Text => Encoding.UTF8.GetString(Payload);
    public bool IsClose => Opcode == 0x8;
    public ushort CloseCode => Payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(Payload) : (ushort)1005;
    public string CloseReason => Payload.Length > 2 ? Encoding.UTF8.GetString(Payload, 2, Payload.Length - 2) : "";

    /// <summary>The Phoenix envelope of a text frame.</summary>
    public JsonArray Json => JsonNode.Parse(Text)!.AsArray();
    public string? JoinRef => Json[0]?.GetValue<string>();
    public string? Ref => Json[1]?.GetValue<string>();
    public string Topic => Json[2]!.GetValue<string>();
    public string Event => Json[3]!.GetValue<string>();
    public JsonNode? Payload_ => Json[4];
}

/// <summary>
/// A WebSocket client written on a raw TCP socket, so tests can send anything — unmasked frames,
/// oversized frames, invalid JSON — and read exactly what the hub sends, close frames included.
/// Every read is bounded by a timeout.
/// </summary>
public sealed class RawWebSocket : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly byte[] _readBuffer = new byte[64 * 1024];
    private int _readStart;
    private int _readEnd;
    private int _nextRef;

    private RawWebSocket(TcpClient tcp, string handshakeResponse)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        HandshakeResponse = handshakeResponse;
    }

    /// <summary>The HTTP response to the upgrade (status line and headers).</summary>
    public string HandshakeResponse { get; }

    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Opens a socket and upgrades it; throws if the hub does not answer 101.</summary>
    public static async Task<RawWebSocket> ConnectAsync(Uri baseUrl, string pathAndQuery = "/socket/websocket?vsn=2.0.0", string? subprotocols = "phoenix", int? receiveBufferBytes = null)
    {
        var (socket, response) = await TryConnectAsync(baseUrl, pathAndQuery, subprotocols, receiveBufferBytes);
        if (!response.StartsWith("HTTP/1.1 101", StringComparison.Ordinal))
        {
            await socket.DisposeAsync();
            throw new InvalidOperationException($"upgrade failed: {response}");
        }
        return socket;
    }

    /// <summary>Sends an upgrade and returns the raw HTTP response (which may be a rejection).</summary>
    /// <param name="prelude">An HTTP request sent (and its response read) first on the same connection.</param>
    public static async Task<(RawWebSocket Socket, string Response)> TryConnectAsync(Uri baseUrl, string pathAndQuery, string? subprotocols = "phoenix", int? receiveBufferBytes = null, string? extraHeaders = null, string? prelude = null)
    {
        var tcp = new TcpClient();
        if (receiveBufferBytes is { } size)
        {
            tcp.ReceiveBufferSize = size;
        }
        await tcp.ConnectAsync(baseUrl.Host, baseUrl.Port).WaitAsync(DefaultTimeout);
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        var request = new StringBuilder()
            .Append("GET ").Append(pathAndQuery).Append(" HTTP/1.1\r\n")
            .Append("Host: ").Append(baseUrl.Authority).Append("\r\n")
            .Append("Upgrade: websocket\r\nConnection: Upgrade\r\n")
            .Append("Sec-WebSocket-Version: 13\r\n")
            .Append("Sec-WebSocket-Key: ").Append(key).Append("\r\n");
        if (subprotocols is not null)
        {
            request.Append("Sec-WebSocket-Protocol: ").Append(subprotocols).Append("\r\n");
        }
        request.Append(extraHeaders ?? "").Append("\r\n");
        var stream = tcp.GetStream();
        if (prelude is not null)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(prelude));
            var preludeHead = await ReadHttpHeadAsync(stream);
            var length = System.Text.RegularExpressions.Regex.Match(preludeHead, @"(?i)content-length:\s*(\d+)");
            if (length.Success)
            {
                await stream.ReadExactlyAsync(new byte[int.Parse(length.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)]);
            }
            else
            {
                // chunked: read up to the last chunk
                var seen = new StringBuilder();
                var one = new byte[1];
                while (!seen.ToString().EndsWith("0\r\n\r\n", StringComparison.Ordinal))
                {
                    await stream.ReadExactlyAsync(one);
                    seen.Append((char)one[0]);
                }
            }
        }
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request.ToString()));
        var response = await ReadHttpHeadAsync(stream);
        return (new RawWebSocket(tcp, response), response);
    }

    private static async Task<string> ReadHttpHeadAsync(NetworkStream stream)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        using var timeout = new CancellationTokenSource(DefaultTimeout);
        while (true)
        {
            var read = await stream.ReadAsync(one, timeout.Token);
            if (read == 0)
            {
                break;
            }
            bytes.Add(one[0]);
            if (bytes.Count >= 4 && bytes[^1] == '\n' && bytes[^2] == '\r' && bytes[^3] == '\n' && bytes[^4] == '\r')
            {
                break;
            }
        }
        return Encoding.ASCII.GetString(bytes.ToArray());
    }

    /// <summary>Sends one frame; masked unless told otherwise.</summary>
    public async Task SendFrameAsync(byte opcode, ReadOnlyMemory<byte> payload, bool fin = true, bool mask = true, byte rsv = 0)
    {
        var header = new List<byte> { (byte)((fin ? 0x80 : 0) | rsv | opcode) };
        var maskBit = mask ? 0x80 : 0;
        if (payload.Length <= 125)
        {
            header.Add((byte)(maskBit | payload.Length));
        }
        else if (payload.Length <= ushort.MaxValue)
        {
            header.Add((byte)(maskBit | 126));
            header.Add((byte)(payload.Length >> 8));
            header.Add((byte)payload.Length);
        }
        else
        {
            header.Add((byte)(maskBit | 127));
            var length = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(length, (ulong)payload.Length);
            header.AddRange(length);
        }
        var body = payload.ToArray();
        if (mask)
        {
            var key = RandomNumberGenerator.GetBytes(4);
            header.AddRange(key);
            for (var i = 0; i < body.Length; i++)
            {
                body[i] ^= key[i & 3];
            }
        }
        await _stream.WriteAsync(header.ToArray());
        await _stream.WriteAsync(body);
    }

    public Task SendTextAsync(string text) => SendFrameAsync(0x1, Encoding.UTF8.GetBytes(text));

    /// <summary>Sends a Phoenix message and returns its ref.</summary>
    public async Task<string> PushAsync(string? joinRef, string topic, string @event, object? payload)
    {
        var @ref = Interlocked.Increment(ref _nextRef).ToString(System.Globalization.CultureInfo.InvariantCulture);
        await SendTextAsync(JsonSerializer.Serialize(new object?[] { joinRef, @ref, topic, @event, payload ?? new { } }));
        return @ref;
    }

    /// <summary>Joins and returns the ok reply's response; throws on an error reply.</summary>
    public async Task<JsonNode> JoinAsync(string topic, object? payload = null)
    {
        var joinRef = Interlocked.Increment(ref _nextRef).ToString(System.Globalization.CultureInfo.InvariantCulture);
        await SendTextAsync(JsonSerializer.Serialize(new object?[] { joinRef, joinRef, topic, "phx_join", payload ?? new { } }));
        var reply = await ReadReplyAsync(joinRef);
        var status = reply.Payload_!["status"]!.GetValue<string>();
        if (status != "ok")
        {
            throw new InvalidOperationException($"join {topic} failed: {reply.Text}");
        }
        return reply.Payload_!["response"]!;
    }

    /// <summary>Reads until the reply with <paramref name="ref"/> arrives (other frames are collected in <paramref name="others"/>).</summary>
    public async Task<ServerFrame> ReadReplyAsync(string @ref, List<ServerFrame>? others = null, TimeSpan? timeout = null)
    {
        while (true)
        {
            var frame = await ReadFrameAsync(timeout);
            if (frame.IsClose)
            {
                throw new InvalidOperationException($"socket closed while waiting for reply {@ref}: {frame.CloseCode} {frame.CloseReason}");
            }
            if (frame.Opcode == 0x1 && frame.Event == "phx_reply" && frame.Ref == @ref)
            {
                return frame;
            }
            others?.Add(frame);
        }
    }

    /// <summary>Reads frames until one matches, returning it (and collecting the others).</summary>
    public async Task<ServerFrame> ReadUntilAsync(Func<ServerFrame, bool> match, List<ServerFrame>? others = null, TimeSpan? timeout = null)
    {
        while (true)
        {
            var frame = await ReadFrameAsync(timeout);
            if (match(frame))
            {
                return frame;
            }
            if (frame.IsClose)
            {
                throw new InvalidOperationException($"socket closed: {frame.CloseCode} {frame.CloseReason}");
            }
            others?.Add(frame);
        }
    }

    /// <summary>Reads frames until a close frame arrives and returns it.</summary>
    public Task<ServerFrame> ReadCloseAsync(TimeSpan? timeout = null) => ReadUntilAsync(static f => f.IsClose, null, timeout);

    /// <summary>Reads one server frame (servers never mask, never fragment here).</summary>
    public async Task<ServerFrame> ReadFrameAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        await FillAsync(2, cts.Token);
        var b0 = _readBuffer[_readStart];
        var b1 = _readBuffer[_readStart + 1];
        long length = b1 & 0x7F;
        var headerLength = 2;
        if (length == 126)
        {
            await FillAsync(4, cts.Token);
            length = BinaryPrimitives.ReadUInt16BigEndian(_readBuffer.AsSpan(_readStart + 2));
            headerLength = 4;
        }
        else if (length == 127)
        {
            await FillAsync(10, cts.Token);
            length = (long)BinaryPrimitives.ReadUInt64BigEndian(_readBuffer.AsSpan(_readStart + 2));
            headerLength = 10;
        }
        if ((b1 & 0x80) != 0)
        {
            throw new InvalidOperationException("server frames must not be masked");
        }
        _readStart += headerLength;
        var payload = new byte[length];
        var copied = 0;
        while (copied < length)
        {
            if (_readStart == _readEnd)
            {
                await FillAsync(1, cts.Token);
            }
            var chunk = (int)Math.Min(length - copied, _readEnd - _readStart);
            Array.Copy(_readBuffer, _readStart, payload, copied, chunk);
            _readStart += chunk;
            copied += chunk;
        }
        return new ServerFrame((byte)(b0 & 0x0F), payload);
    }

    /// <summary>True when the hub closed the TCP connection (read returns 0) within the timeout.</summary>
    public async Task<bool> WaitForEndOfStreamAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                _readStart = _readEnd = 0;
                var read = await _stream.ReadAsync(_readBuffer, cts.Token);
                if (read == 0)
                {
                    return true;
                }
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    private async Task FillAsync(int needed, CancellationToken cancellationToken)
    {
        if (_readEnd - _readStart >= needed)
        {
            return;
        }
        if (_readStart > 0)
        {
            Array.Copy(_readBuffer, _readStart, _readBuffer, 0, _readEnd - _readStart);
            _readEnd -= _readStart;
            _readStart = 0;
        }
        while (_readEnd - _readStart < needed)
        {
            var read = await _stream.ReadAsync(_readBuffer.AsMemory(_readEnd), cancellationToken);
            if (read == 0)
            {
                throw new EndOfStreamException("the hub closed the connection");
            }
            _readEnd += read;
        }
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}
