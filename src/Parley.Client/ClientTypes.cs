using System.Text.Json;

namespace Parley.Client;

/// <summary>A message from a joined topic (a <c>msg</c> broadcast, replayed or live, or any other event the hub pushes).</summary>
/// <param name="Offset">The message's offset for <c>msg</c> events; null for events without one.</param>
public sealed record ClientMessage(string Topic, string Event, JsonElement Payload, long? Offset)
{
    /// <summary>The raw payload of a binary frame (a terminal's output); empty for JSON messages.</summary>
    public ReadOnlyMemory<byte> Binary { get; init; }

    /// <summary>True for a binary frame.</summary>
    public bool IsBinary { get; init; }
}

/// <summary>The answer to a push: <c>ok</c> or <c>error</c> (an error is a value, not an exception).</summary>
public sealed record PushReply(string Status, JsonElement Response)
{
    public bool IsOk => Status == "ok";

    /// <summary>The raw response of a binary reply (e.g. <c>fetch_output</c>); empty otherwise.</summary>
    public ReadOnlyMemory<byte> Binary { get; init; }

    /// <summary>The error reason (<c>forbidden</c>, <c>rate_limited</c>, …) of an error reply.</summary>
    public string? Reason => !IsOk && Response.ValueKind == JsonValueKind.Object && Response.TryGetProperty("reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
}

/// <summary>Something that happened to the connection, for the application to observe.</summary>
public abstract record ClientEvent;

/// <summary>The socket dropped; the next dial is at <paramref name="NextAttemptAt"/>.</summary>
public sealed record Reconnecting(int Attempt, DateTimeOffset NextAttemptAt, string Reason) : ClientEvent;

/// <summary>A topic was joined again after a reconnect. <paramref name="Recovered"/> false means messages may be missing: reload.</summary>
/// <param name="Reply">The hub's join reply (for topics whose join carries a snapshot, the fresh snapshot).</param>
public sealed record Rejoined(string Topic, bool Recovered, JsonElement Reply = default) : ClientEvent;

/// <summary>The credential expired or was refused; a fresh one is being fetched.</summary>
public sealed record TokenRefreshing : ClientEvent;

/// <summary>Authentication failed for good (refused credential, revoked key, ban, provider gave up): the client stopped.</summary>
public sealed record AuthFailed(string Reason) : ClientEvent;

/// <summary>The session is ready: every topic is joined and application pushes flow.</summary>
public sealed record Ready : ClientEvent;

/// <summary>A push or join failed because the socket dropped, the client stopped, or no reply came in time.</summary>
public sealed class ParleyClientException(string message) : Exception(Parley.Protocol.SecretRedactor.Redact(message));
