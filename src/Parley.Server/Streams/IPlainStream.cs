using System.Buffers;
using System.Text.Json;
using Parley.Hub.Auth;
using Parley.Protocol;

namespace Parley.Server.Streams;

/// <summary>
/// One plain JSON WebSocket endpoint (docs/protocol.md §16), registered per path in
/// <see cref="PlainStreamRegistry"/>. The framework owns the socket: upgrade and authentication, the
/// <c>ping</c>/<c>pong</c> keepalive, the idle close, invalid frames (1008), errors (an <c>error</c> frame and
/// 4000 + status), shutdown (1001), and consumers that fall behind (their queued deltas are dropped and the
/// session is asked for a fresh snapshot).
/// </summary>
internal interface IPlainStream
{
    /// <summary>The path served, e.g. <c>/ws/messages</c>. A path ending in <c>/</c> serves everything below it (the rest, still percent-encoded, is <see cref="PlainStreamConnection.Subpath"/>).</summary>
    string Path { get; }

    /// <summary>
    /// Validates the request (<see cref="PlainStreamConnection.Params"/>, <see cref="PlainStreamConnection.Principal"/>)
    /// and returns the session; throws <see cref="PlainStreamException"/> to refuse with an error frame and 4000 + status.
    /// Must not send anything: the framework calls <see cref="IPlainStreamSession.Start"/> next.
    /// </summary>
    ValueTask<IPlainStreamSession> OpenAsync(PlainStreamConnection connection, CancellationToken cancellationToken);
}

/// <summary>One open stream's state on the source side.</summary>
internal interface IPlainStreamSession : IDisposable
{
    /// <summary>Subscribes to the source and sends the first snapshot with <see cref="PlainStreamConnection.SendSnapshot"/>, atomically with the source's deltas.</summary>
    void Start();

    /// <summary>The consumer fell behind: send a fresh snapshot with <see cref="PlainStreamConnection.SendSnapshot"/>, ordered with the source's deltas (deltas are ignored until it arrives).</summary>
    void Resync();

    /// <summary>Handles a client frame other than <c>ping</c>; false when <paramref name="type"/> is not one this stream takes (the framework closes with 1008).</summary>
    ValueTask<bool> OnClientFrameAsync(string type, JsonElement frame, CancellationToken cancellationToken) => ValueTask.FromResult(false);
}

/// <summary>Refuses or ends a stream: an <c>error</c> frame with <see cref="Code"/> and the message, then close 4000 + <see cref="HttpStatus"/>.</summary>
internal sealed class PlainStreamException(int httpStatus, string code, string message) : Exception(message)
{
    /// <summary>The HTTP status that means the same (400 … 599).</summary>
    public int HttpStatus { get; } = httpStatus;

    /// <summary>One of <see cref="StreamErrorCodes"/> or a stream's own code.</summary>
    public string Code { get; } = code;

    /// <summary>400 <c>bad_params</c>.</summary>
    public static PlainStreamException BadParams(string message) => new(400, StreamErrorCodes.BadParams, message);
}

/// <summary>Encodes plain-stream frames: one JSON object as a complete WebSocket text frame, ready for many connections.</summary>
internal static class PlainFrames
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;

    /// <summary>The <c>{"type":"pong"}</c> frame.</summary>
    public static readonly byte[] Pong = WebSocketFraming.EncodeFrame(WebSocketOpcode.Text, """{"type":"pong"}"""u8);

    /// <summary>A text frame holding the JSON object <paramref name="write"/> writes.</summary>
    public static byte[] Text<TState>(TState state, Action<Utf8JsonWriter, TState> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(1024);
        buffer.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(buffer, PhoenixJsonCodec.WriterOptions))
        {
            write(writer, state);
        }
        return WebSocketFraming.EncodeFrame(WebSocketOpcode.Text, buffer.WrittenSpan);
    }

    /// <summary>An <c>{"type":"error","code":…,"message":…}</c> frame.</summary>
    public static byte[] Error(string code, string message) => Text((code, message), static (w, s) =>
    {
        w.WriteStartObject();
        w.WriteString("type"u8, "error");
        w.WriteString("code"u8, s.code);
        w.WriteString("message"u8, s.message);
        w.WriteEndObject();
    });
}
