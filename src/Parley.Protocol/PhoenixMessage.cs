using System.Text.Json;

namespace Parley.Protocol;

/// <summary>
/// One inbound Phoenix V2 message: <c>[join_ref, ref, topic, event, payload]</c> from a text frame, or a
/// binary push (kind 0). Owns the parsed JSON; dispose it when handled. The payload refers to the
/// frame's bytes, which the transport keeps valid until the message is disposed.
/// </summary>
public sealed class PhoenixMessage : IDisposable
{
    private readonly JsonDocument? _document;

    internal PhoenixMessage(string? joinRef, string? @ref, string topic, string @event, JsonDocument? document, JsonElement payload, ReadOnlyMemory<byte> binaryPayload, bool isBinary)
    {
        JoinRef = joinRef;
        Ref = @ref;
        Topic = topic;
        Event = @event;
        _document = document;
        Payload = payload;
        BinaryPayload = binaryPayload;
        IsBinary = isBinary;
    }

    /// <summary>The ref of the join that opened the channel instance; null for heartbeats.</summary>
    public string? JoinRef { get; }

    /// <summary>The per-socket push ref; null when the client expects no reply.</summary>
    public string? Ref { get; }

    /// <summary>The topic, e.g. <c>room:lobby</c>; <c>phoenix</c> for heartbeats.</summary>
    public string Topic { get; }

    /// <summary>The event, e.g. <c>phx_join</c> or <c>msg</c>.</summary>
    public string Event { get; }

    /// <summary>The JSON payload (text frames). <see cref="JsonValueKind.Undefined"/> for binary pushes.</summary>
    public JsonElement Payload { get; }

    /// <summary>The raw payload of a binary push; empty for text frames.</summary>
    public ReadOnlyMemory<byte> BinaryPayload { get; }

    /// <summary>True when the message came in a binary frame.</summary>
    public bool IsBinary { get; }

    /// <summary>Creates a text-frame message (tests and in-process callers).</summary>
    public static PhoenixMessage FromJson(string? joinRef, string? @ref, string topic, string @event, JsonElement payload) =>
        new(joinRef, @ref, topic, @event, null, payload, default, false);

    /// <inheritdoc />
    public void Dispose() => _document?.Dispose();
}
