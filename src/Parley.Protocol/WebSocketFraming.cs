using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Parley.Protocol;

/// <summary>RFC 6455 opcodes.</summary>
public enum WebSocketOpcode : byte
{
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// <summary>
/// RFC 6455 framing for the server side: headers for unmasked server frames, the handshake accept
/// key and close-frame payloads. Pure functions; no I/O.
/// </summary>
public static class WebSocketFraming
{
    /// <summary>The largest header a server frame can have (2 + 8 bytes; servers never mask).</summary>
    public const int MaxServerHeaderBytes = 10;

    /// <summary>Control frame payloads (close, ping, pong) are at most 125 bytes.</summary>
    public const int MaxControlPayloadBytes = 125;

    private static ReadOnlySpan<byte> AcceptGuid => "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"u8;

    /// <summary>The header length of an unmasked server frame carrying <paramref name="payloadLength"/> bytes.</summary>
    public static int HeaderLength(long payloadLength) => payloadLength switch
    {
        <= 125 => 2,
        <= ushort.MaxValue => 4,
        _ => 10,
    };

    /// <summary>Writes a final (FIN) unmasked frame header and returns its length.</summary>
    public static int WriteHeader(Span<byte> destination, WebSocketOpcode opcode, long payloadLength)
    {
        destination[0] = (byte)(0x80 | (byte)opcode);
        if (payloadLength <= 125)
        {
            destination[1] = (byte)payloadLength;
            return 2;
        }
        if (payloadLength <= ushort.MaxValue)
        {
            destination[1] = 126;
            BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)payloadLength);
            return 4;
        }
        destination[1] = 127;
        BinaryPrimitives.WriteUInt64BigEndian(destination[2..], (ulong)payloadLength);
        return 10;
    }

    /// <summary>A complete server frame: header plus a copy of <paramref name="payload"/>.</summary>
    public static byte[] EncodeFrame(WebSocketOpcode opcode, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[HeaderLength(payload.Length) + payload.Length];
        var header = WriteHeader(frame, opcode, payload.Length);
        payload.CopyTo(frame.AsSpan(header));
        return frame;
    }

    /// <summary>A complete close frame with <paramref name="code"/> and a UTF-8 reason cut to fit 123 bytes.</summary>
    public static byte[] EncodeClose(ushort code, string reason)
    {
        Span<byte> payload = stackalloc byte[MaxControlPayloadBytes];
        BinaryPrimitives.WriteUInt16BigEndian(payload, code);
        var length = 2 + Utf8Prefix(reason, payload[2..]);
        return EncodeFrame(WebSocketOpcode.Close, payload[..length]);
    }

    /// <summary>Reads the code and reason of a close payload; code 1005 ("no status") when empty.</summary>
    public static bool TryParseClosePayload(ReadOnlySpan<byte> payload, out ushort code, out string reason)
    {
        code = 1005;
        reason = "";
        if (payload.Length == 0)
        {
            return true;
        }
        if (payload.Length == 1)
        {
            return false;
        }
        code = BinaryPrimitives.ReadUInt16BigEndian(payload);
        try
        {
            reason = StrictUtf8.GetString(payload[2..]);
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
        return true;
    }

    /// <summary>The <c>Sec-WebSocket-Accept</c> value for a client's <c>Sec-WebSocket-Key</c>.</summary>
    public static string ComputeAcceptKey(string secWebSocketKey)
    {
        Span<byte> input = stackalloc byte[128];
        var keyBytes = Encoding.ASCII.GetBytes(secWebSocketKey.Trim(), input);
        AcceptGuid.CopyTo(input[keyBytes..]);
        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
#pragma warning disable CA5350 // RFC 6455 mandates SHA-1 for the accept key; it is not used for security.
        SHA1.HashData(input[..(keyBytes + AcceptGuid.Length)], hash);
#pragma warning restore CA5350
        return Convert.ToBase64String(hash);
    }

    /// <summary>A UTF-8 decoder that throws on invalid bytes (RFC 6455 requires close 1007 for invalid text).</summary>
    public static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static int Utf8Prefix(string text, Span<byte> destination)
    {
        var limit = destination.Length;
        var written = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            if (written + rune.Utf8SequenceLength > limit)
            {
                break;
            }
            written += rune.EncodeToUtf8(destination[written..]);
        }
        return written;
    }
}

/// <summary>The outcome of <see cref="WebSocketMessageReader.TryRead"/>.</summary>
public enum WebSocketReadStatus
{
    /// <summary>Not enough bytes yet; read more and call again.</summary>
    NeedMoreData,

    /// <summary>A complete data message (text or binary), or a control frame, is in <see cref="WebSocketMessageReader.Payload"/>.</summary>
    Message,

    /// <summary>The peer broke the protocol or a limit; close with <see cref="WebSocketMessageReader.ErrorCode"/>.</summary>
    Error,
}

/// <summary>
/// Reassembles client frames (masked, possibly fragmented, control frames interleaved) into messages,
/// enforcing a maximum message size before buffering the payload. The payload of the last message is
/// valid until the next call. Buffers are rented only while a message is being assembled, so an idle
/// connection holds none.
/// </summary>
public sealed class WebSocketMessageReader(int maxMessageBytes)
{
    private byte[]? _buffer;
    private int _length;
    private WebSocketOpcode _fragmentedOpcode;
    private bool _inFragmentedMessage;
    private byte[]? _control; // allocated on the first control frame: most sockets never send one
    private int _controlLength;
    private bool _lastWasControl;

    /// <summary>The largest data message accepted, in bytes.</summary>
    public int MaxMessageBytes { get; } = maxMessageBytes;

    /// <summary>The opcode of the last message (Text, Binary, Close, Ping or Pong).</summary>
    public WebSocketOpcode Opcode { get; private set; }

    /// <summary>The last message's payload (unmasked).</summary>
    public ReadOnlySpan<byte> Payload => PayloadMemory.Span;

    /// <summary>The last message's payload as memory (valid until the next <see cref="TryRead"/>).</summary>
    public ReadOnlyMemory<byte> PayloadMemory => _lastWasControl ? _control.AsMemory(0, _controlLength) : _buffer.AsMemory(0, _length);


    /// <summary>When <see cref="WebSocketReadStatus.Error"/>: the close code to send.</summary>
    public ushort ErrorCode { get; private set; }

    /// <summary>When <see cref="WebSocketReadStatus.Error"/>: the close reason to send.</summary>
    public string ErrorReason { get; private set; } = "";

    /// <summary>Consumes whole frames from <paramref name="buffer"/> until one message is complete.</summary>
    public WebSocketReadStatus TryRead(ref ReadOnlySequence<byte> buffer)
    {
        if (!_lastWasControl && !_inFragmentedMessage)
        {
            ReleaseBuffer();
        }
        _lastWasControl = false;
        Span<byte> head = stackalloc byte[14]; // outside the loop: stack use must not grow per fragment
        while (true)
        {
            if (buffer.Length < 2)
            {
                return WebSocketReadStatus.NeedMoreData;
            }
            var available = (int)Math.Min(14, buffer.Length);
            buffer.Slice(0, available).CopyTo(head);
            var fin = (head[0] & 0x80) != 0;
            if ((head[0] & 0x70) != 0)
            {
                return Fail(CloseStatus.ProtocolError, "reserved bits set without a negotiated extension");
            }
            var opcode = (WebSocketOpcode)(head[0] & 0x0F);
            var masked = (head[1] & 0x80) != 0;
            if (!masked)
            {
                return Fail(CloseStatus.ProtocolError, "client frames must be masked");
            }
            long payloadLength = head[1] & 0x7F;
            var headerLength = 2;
            if (payloadLength == 126)
            {
                if (available < 4) return WebSocketReadStatus.NeedMoreData;
                payloadLength = BinaryPrimitives.ReadUInt16BigEndian(head[2..]);
                headerLength = 4;
            }
            else if (payloadLength == 127)
            {
                if (available < 10) return WebSocketReadStatus.NeedMoreData;
                var longLength = BinaryPrimitives.ReadUInt64BigEndian(head[2..]);
                if (longLength > long.MaxValue)
                {
                    return Fail(CloseStatus.ProtocolError, "the most significant bit of a 64-bit length must be 0");
                }
                payloadLength = (long)longLength;
                headerLength = 10;
            }
            if (available < headerLength + 4)
            {
                return WebSocketReadStatus.NeedMoreData;
            }
            var mask = head.Slice(headerLength, 4);
            headerLength += 4;

            var isControl = ((byte)opcode & 0x8) != 0;
            if (isControl)
            {
                if (opcode is not (WebSocketOpcode.Close or WebSocketOpcode.Ping or WebSocketOpcode.Pong))
                {
                    return Fail(CloseStatus.ProtocolError, $"unknown opcode {(byte)opcode}");
                }
                if (!fin || payloadLength > WebSocketFraming.MaxControlPayloadBytes)
                {
                    return Fail(CloseStatus.ProtocolError, "control frames must be final and at most 125 bytes");
                }
            }
            else if (opcode is not (WebSocketOpcode.Text or WebSocketOpcode.Binary or WebSocketOpcode.Continuation))
            {
                return Fail(CloseStatus.ProtocolError, $"unknown opcode {(byte)opcode}");
            }
            else if (opcode == WebSocketOpcode.Continuation && !_inFragmentedMessage)
            {
                return Fail(CloseStatus.ProtocolError, "continuation frame without a message to continue");
            }
            else if (opcode != WebSocketOpcode.Continuation && _inFragmentedMessage)
            {
                return Fail(CloseStatus.ProtocolError, "new data frame before the fragmented message ended");
            }
            else if (payloadLength > MaxMessageBytes - _length)
            {
                return Fail(CloseStatus.MessageTooBig, $"message exceeds {MaxMessageBytes} bytes");
            }

            if (buffer.Length < headerLength + payloadLength)
            {
                return WebSocketReadStatus.NeedMoreData;
            }
            var payload = buffer.Slice(headerLength, payloadLength);
            Span<byte> target;
            if (isControl)
            {
                _control ??= new byte[WebSocketFraming.MaxControlPayloadBytes];
                target = _control.AsSpan(0, (int)payloadLength);
                _controlLength = (int)payloadLength;
            }
            else
            {
                EnsureCapacity(_length + (int)payloadLength);
                target = _buffer.AsSpan(_length, (int)payloadLength);
                _length += (int)payloadLength;
            }
            payload.CopyTo(target);
            Unmask(target, mask);
            buffer = buffer.Slice(headerLength + payloadLength);

            if (isControl)
            {
                _lastWasControl = true;
                Opcode = opcode;
                return WebSocketReadStatus.Message;
            }
            if (opcode != WebSocketOpcode.Continuation)
            {
                _fragmentedOpcode = opcode;
            }
            if (!fin)
            {
                _inFragmentedMessage = true;
                continue;
            }
            _inFragmentedMessage = false;
            Opcode = _fragmentedOpcode;
            return WebSocketReadStatus.Message;
        }
    }

    /// <summary>Returns any rented buffer to the pool.</summary>
    public void ReleaseBuffer()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }
        _length = 0;
    }

    private WebSocketReadStatus Fail(ushort code, string reason)
    {
        ErrorCode = code;
        ErrorReason = reason;
        return WebSocketReadStatus.Error;
    }

    private void EnsureCapacity(int needed)
    {
        if (_buffer is not null && _buffer.Length >= needed)
        {
            return;
        }
        var next = ArrayPool<byte>.Shared.Rent(Math.Max(needed, 1024));
        if (_buffer is not null)
        {
            _buffer.AsSpan(0, _length).CopyTo(next);
            ArrayPool<byte>.Shared.Return(_buffer);
        }
        _buffer = next;
    }

    private static void Unmask(Span<byte> data, ReadOnlySpan<byte> mask)
    {
        var key = BinaryPrimitives.ReadUInt32LittleEndian(mask);
        var i = 0;
        if (data.Length >= 8)
        {
            var key64 = ((ulong)key << 32) | key;
            var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(data[..(data.Length & ~7)]);
            for (var w = 0; w < words.Length; w++)
            {
                words[w] ^= key64;
            }
            i = data.Length & ~7;
        }
        for (; i < data.Length; i++)
        {
            data[i] ^= mask[i & 3];
        }
    }
}
