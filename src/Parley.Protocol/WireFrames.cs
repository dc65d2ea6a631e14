using System.Buffers;
using System.Text.Json;

namespace Parley.Protocol;

/// <summary>
/// Builds complete outbound WebSocket frames (header + Phoenix JSON) in one exact-size array, so a
/// broadcast is encoded once and the same bytes are written to every subscriber.
/// </summary>
public static class WireFrames
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;
    [ThreadStatic] private static Utf8JsonWriter? t_writer;

    /// <summary>A text frame <c>[join_ref, ref, topic, event, payload]</c>.</summary>
    public static byte[] Text<TState>(string? joinRef, string? @ref, string topic, string @event, TState state, Action<Utf8JsonWriter, TState> writePayload)
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(1024);
        buffer.ResetWrittenCount();
        var writer = t_writer ??= new Utf8JsonWriter(buffer, PhoenixJsonCodec.WriterOptions);
        writer.Reset(buffer);
        try
        {
            PhoenixJsonCodec.Write(writer, joinRef, @ref, topic, @event, state, writePayload);
            writer.Flush();
            var frame = WebSocketFraming.EncodeFrame(WebSocketOpcode.Text, buffer.WrittenSpan);
            if (buffer.Capacity > 64 * 1024)
            {
                t_buffer = null; // don't pin a large buffer to the thread forever
                t_writer = null;
            }
            return frame;
        }
        catch
        {
            t_buffer = null;
            t_writer = null;
            throw;
        }
    }

    /// <summary>A reply frame <c>[join_ref, ref, topic, "phx_reply", {"status", "response"}]</c>.</summary>
    public static byte[] Reply<TState>(string? joinRef, string? @ref, string topic, string status, TState state, Action<Utf8JsonWriter, TState> writeResponse) =>
        Text(joinRef, @ref, topic, PhoenixEvents.Reply, (status, state, writeResponse), static (w, s) =>
            PhoenixJsonCodec.WriteReplyPayload(w, s.status, (s.state, s.writeResponse), static (w2, s2) => s2.writeResponse(w2, s2.state)));

    /// <summary>A reply whose response is an empty object.</summary>
    public static byte[] ReplyEmpty(string? joinRef, string? @ref, string topic, string status) =>
        Reply(joinRef, @ref, topic, status, 0, static (w, _) => { w.WriteStartObject(); w.WriteEndObject(); });

    /// <summary>An error reply <c>{"status":"error","response":{"reason":…}}</c>.</summary>
    public static byte[] ErrorReply(string? joinRef, string? @ref, string topic, string reason) =>
        Reply(joinRef, @ref, topic, PhoenixEvents.StatusError, reason, static (w, r) =>
        {
            w.WriteStartObject();
            w.WriteString("reason"u8, r);
            w.WriteEndObject();
        });

    /// <summary>A channel event with an empty payload, e.g. <c>phx_close</c> or <c>phx_error</c>.</summary>
    public static byte[] EmptyEvent(string? joinRef, string? @ref, string topic, string @event) =>
        Text(joinRef, @ref, topic, @event, 0, static (w, _) => { w.WriteStartObject(); w.WriteEndObject(); });
}

/// <summary>Phoenix's reserved topic, events and statuses.</summary>
public static class PhoenixEvents
{
    public const string PhoenixTopic = "phoenix";
    public const string Heartbeat = "heartbeat";
    public const string Join = "phx_join";
    public const string Leave = "phx_leave";
    public const string Reply = "phx_reply";
    public const string Close = "phx_close";
    public const string Error = "phx_error";
    public const string StatusOk = "ok";
    public const string StatusError = "error";
}
