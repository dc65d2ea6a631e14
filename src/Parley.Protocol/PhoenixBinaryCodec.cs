using System.Text;

namespace Parley.Protocol;

/// <summary>
/// The Phoenix V2 binary frame kinds (docs/protocol.md §Binary frames). Header lengths are one byte,
/// so each string field is at most 255 bytes of UTF-8.
/// </summary>
public static class PhoenixBinaryCodec
{
    /// <summary>Kind 0: a push (client → server with a ref; server → client without).</summary>
    public const byte KindPush = 0;

    /// <summary>Kind 1: a reply (server → client).</summary>
    public const byte KindReply = 1;

    /// <summary>Kind 2: a broadcast (server → client).</summary>
    public const byte KindBroadcast = 2;

    /// <summary>
    /// Parses a client push: <c>[0][len join_ref][len ref][len topic][len event] join_ref ref topic event payload</c>.
    /// The message's <see cref="PhoenixMessage.BinaryPayload"/> is a copy, independent of <paramref name="frame"/>.
    /// </summary>
    public static bool TryParsePush(ReadOnlySpan<byte> frame, out PhoenixMessage? message, out string error)
    {
        message = null;
        if (frame.Length < 5)
        {
            error = "binary frame shorter than its header";
            return false;
        }
        if (frame[0] != KindPush)
        {
            error = $"binary frame kind {frame[0]} is not a client push (kind 0)";
            return false;
        }
        int joinRefLength = frame[1], refLength = frame[2], topicLength = frame[3], eventLength = frame[4];
        var offset = 5;
        if (frame.Length < offset + joinRefLength + refLength + topicLength + eventLength)
        {
            error = "binary frame shorter than its header says";
            return false;
        }
        try
        {
            var joinRef = Read(frame, ref offset, joinRefLength);
            var @ref = Read(frame, ref offset, refLength);
            var topic = Read(frame, ref offset, topicLength);
            var @event = Read(frame, ref offset, eventLength);
            if (topic.Length == 0 || @event.Length == 0)
            {
                error = "topic and event must not be empty";
                return false;
            }
            message = new PhoenixMessage(
                joinRef.Length == 0 ? null : joinRef,
                @ref.Length == 0 ? null : @ref,
                topic, @event, null, default, frame[offset..].ToArray(), isBinary: true);
            error = "";
            return true;
        }
        catch (DecoderFallbackException)
        {
            error = "binary frame header fields must be UTF-8";
            return false;
        }
    }

    /// <summary>Kind 0, server → client: <c>[0][len join_ref][len topic][len event] join_ref topic event payload</c>.</summary>
    public static byte[] EncodePush(string? joinRef, string topic, string @event, ReadOnlySpan<byte> payload, bool wsFramed = false)
    {
        ReadOnlySpan<string?> fields = [joinRef, topic, @event];
        return Encode(KindPush, fields, payload, wsFramed);
    }

    /// <summary>Kind 0, client → server: <c>[0][len join_ref][len ref][len topic][len event] join_ref ref topic event payload</c> (what <see cref="TryParsePush"/> reads).</summary>
    public static byte[] EncodeClientPush(string? joinRef, string? @ref, string topic, string @event, ReadOnlySpan<byte> payload)
    {
        ReadOnlySpan<string?> fields = [joinRef, @ref, topic, @event];
        return Encode(KindPush, fields, payload, wsFramed: false);
    }

    /// <summary>Kind 1: <c>[1][len join_ref][len ref][len topic][len status] join_ref ref topic status response</c>.</summary>
    public static byte[] EncodeReply(string? joinRef, string? @ref, string topic, string status, ReadOnlySpan<byte> response, bool wsFramed = false)
    {
        ReadOnlySpan<string?> fields = [joinRef, @ref, topic, status];
        return Encode(KindReply, fields, response, wsFramed);
    }

    /// <summary>Kind 2: <c>[2][len topic][len event] topic event payload</c>.</summary>
    public static byte[] EncodeBroadcast(string topic, string @event, ReadOnlySpan<byte> payload, bool wsFramed = false)
    {
        ReadOnlySpan<string?> fields = [topic, @event];
        return Encode(KindBroadcast, fields, payload, wsFramed);
    }

    private static byte[] Encode(byte kind, ReadOnlySpan<string?> fields, ReadOnlySpan<byte> payload, bool wsFramed)
    {
        var fieldBytes = 0;
        foreach (var field in fields)
        {
            var length = Encoding.UTF8.GetByteCount(field ?? "");
            if (length > 255)
            {
                throw new ArgumentException($"binary frame field is {length} bytes; the limit is 255", nameof(fields));
            }
            fieldBytes += length;
        }
        var phoenixLength = 1 + fields.Length + fieldBytes + payload.Length;
        var header = wsFramed ? WebSocketFraming.HeaderLength(phoenixLength) : 0;
        var result = new byte[header + phoenixLength];
        if (wsFramed)
        {
            WebSocketFraming.WriteHeader(result, WebSocketOpcode.Binary, phoenixLength);
        }
        var span = result.AsSpan(header);
        span[0] = kind;
        var offset = 1 + fields.Length;
        for (var i = 0; i < fields.Length; i++)
        {
            var written = Encoding.UTF8.GetBytes(fields[i] ?? "", span[offset..]);
            span[1 + i] = (byte)written;
            offset += written;
        }
        payload.CopyTo(span[offset..]);
        return result;
    }

    /// <summary>
    /// Parses a server frame on the client side: a push (kind 0: join_ref, topic, event), a reply (kind 1:
    /// join_ref, ref, topic, status) or a broadcast (kind 2: topic, event). <paramref name="eventOrStatus"/> is the
    /// event, or the reply's status; <paramref name="payloadStart"/> is where the raw payload begins.
    /// </summary>
    public static bool TryParseServerFrame(ReadOnlySpan<byte> frame, out byte kind, out string? joinRef, out string? @ref, out string topic, out string eventOrStatus, out int payloadStart)
    {
        kind = frame.Length > 0 ? frame[0] : (byte)255;
        joinRef = @ref = null;
        topic = eventOrStatus = "";
        payloadStart = 0;
        var fieldCount = kind switch { KindPush => 3, KindReply => 4, KindBroadcast => 2, _ => 0 };
        if (fieldCount == 0 || frame.Length < 1 + fieldCount)
        {
            return false;
        }
        var offset = 1 + fieldCount;
        var total = offset;
        for (var i = 0; i < fieldCount; i++)
        {
            total += frame[1 + i];
        }
        if (total > frame.Length)
        {
            return false;
        }
        try
        {
            var fields = new string[fieldCount];
            for (var i = 0; i < fieldCount; i++)
            {
                fields[i] = Read(frame, ref offset, frame[1 + i]);
            }
            switch (kind)
            {
                case KindPush:
                    (joinRef, topic, eventOrStatus) = (fields[0], fields[1], fields[2]);
                    break;
                case KindReply:
                    (joinRef, @ref, topic, eventOrStatus) = (fields[0], fields[1], fields[2], fields[3]);
                    break;
                default:
                    (topic, eventOrStatus) = (fields[0], fields[1]);
                    break;
            }
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
        payloadStart = offset;
        return true;
    }

    private static string Read(ReadOnlySpan<byte> frame, ref int offset, int length)
    {
        var text = WebSocketFraming.StrictUtf8.GetString(frame.Slice(offset, length));
        offset += length;
        return text;
    }
}
