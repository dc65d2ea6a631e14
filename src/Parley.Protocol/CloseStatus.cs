namespace Parley.Protocol;

/// <summary>What a client should do after the hub closes its socket with a given code.</summary>
public enum CloseAdvice
{
    /// <summary>Reconnect (with backoff) and rejoin with <c>since</c>; nothing is lost.</summary>
    Reconnect,

    /// <summary>Do not reconnect until something changes (a fixed client, a new credential).</summary>
    Stop,
}

/// <summary>
/// Every WebSocket close code the hub sends, in one place (docs/protocol.md §Close codes).
/// phoenix.js reconnects after every code except 1000, so 1000 is never used by the hub to mean
/// anything but "the client asked to close".
/// </summary>
public static class CloseStatus
{
    /// <summary>The client closed; the hub echoes its close.</summary>
    public const ushort Normal = 1000;

    /// <summary>The hub is shutting down or restarting. Come back.</summary>
    public const ushort GoingAway = 1001;

    /// <summary>An RFC 6455 violation: unmasked client frame, bad opcode, reserved bits, bad fragmentation.</summary>
    public const ushort ProtocolError = 1002;

    /// <summary>A frame that is not valid UTF-8, not JSON, or not a Phoenix V2 envelope.</summary>
    public const ushort InvalidPayload = 1007;

    /// <summary>A policy was broken on purpose: sustained rate-limit abuse.</summary>
    public const ushort PolicyViolation = 1008;

    /// <summary>An inbound message larger than the frame limit.</summary>
    public const ushort MessageTooBig = 1009;

    /// <summary>The hub failed internally. Come back.</summary>
    public const ushort InternalError = 1011;

    /// <summary>Nothing (not even a heartbeat) arrived within the idle timeout. Come back.</summary>
    public const ushort IdleTimeout = 4000;

    /// <summary>The connection's outbound queue overflowed. Come back and recover with <c>since</c>.</summary>
    public const ushort SlowConsumer = 4008;

    /// <summary>The credential expired; refresh it, then come back.</summary>
    public const ushort TokenExpired = 4401;

    /// <summary>The credential was revoked or the user banned. Stop.</summary>
    public const ushort Forbidden = 4403;

    /// <summary>An admin closed this user's sockets. Stop (a person may reconnect by hand).</summary>
    public const ushort Kicked = 4409;

    /// <summary>What a client should do after <paramref name="code"/>.</summary>
    public static CloseAdvice AdviceFor(ushort code) => code switch
    {
        Normal or Forbidden or Kicked or ProtocolError or InvalidPayload or PolicyViolation or MessageTooBig => CloseAdvice.Stop,
        _ => CloseAdvice.Reconnect,
    };
}

/// <summary>The <c>reason</c> strings of error replies (<c>{"status":"error","response":{"reason":…}}</c>).</summary>
public static class ErrorReasons
{
    /// <summary>No channel handler matches the topic, or the topic is not joined on this socket (Phoenix's own wording).</summary>
    public const string UnmatchedTopic = "unmatched topic";

    /// <summary>The channel's join handler failed unexpectedly (Phoenix's own wording).</summary>
    public const string JoinCrashed = "join crashed";

    /// <summary>The socket already has the maximum number of joined topics.</summary>
    public const string TooManyTopics = "too_many_topics";

    /// <summary>A payload field is over its size limit.</summary>
    public const string TooLarge = "too_large";

    /// <summary>The connection's push rate is over its limit; the reply carries <c>retry_after_ms</c>.</summary>
    public const string RateLimited = "rate_limited";

    /// <summary>The payload is missing a field or has a field of the wrong type; the reply carries <c>detail</c>.</summary>
    public const string InvalidPayload = "invalid_payload";

    /// <summary>The channel does not handle this event.</summary>
    public const string UnknownEvent = "unknown_event";

    /// <summary>The topic name does not follow the rules of its kind (e.g. room names).</summary>
    public const string InvalidTopic = "invalid_topic";

    /// <summary>The connection may not join this topic.</summary>
    public const string Unauthorized = "unauthorized";

    /// <summary>An in-band <c>token.refresh</c> carried a credential that is invalid, expired or someone else's.</summary>
    public const string InvalidToken = "invalid_token";

    /// <summary>The principal may not do this (a guest or read-only key pushing, a join outside a key's topics, a non-admin operation).</summary>
    public const string Forbidden = "forbidden";

    /// <summary>The hub is shutting down and takes no new work.</summary>
    public const string ShuttingDown = "shutting_down";

    /// <summary>The hub failed to handle the push; nothing was stored.</summary>
    public const string InternalError = "internal_error";

    /// <summary>Binary payloads are not accepted on this topic.</summary>
    public const string BinaryNotSupported = "binary_not_supported";

    /// <summary>A conditional write's <c>expected_version</c> did not match: nothing changed; read the key again.</summary>
    public const string VersionConflict = "version_conflict";

    /// <summary>The thing asked for (a state key) does not exist.</summary>
    public const string NotFound = "not_found";

    /// <summary>A task claim lost: someone else holds the task (or it is done).</summary>
    public const string AlreadyClaimed = "already_claimed";

    /// <summary>A state namespace is at its key or byte budget: nothing changed.</summary>
    public const string StateFull = "state_full";
    /// <summary>A presence <c>status</c> that is not <c>idle</c>, <c>working</c>, <c>dnd</c> or <c>away</c>; the reply carries <c>detail</c>.</summary>
    public const string InvalidStatus = "invalid_status";

    /// <summary>A presence <c>client</c> kind that is not <c>cli</c>, <c>agent</c>, <c>web</c>, <c>tui</c> or <c>service</c>; the reply carries <c>detail</c>.</summary>
    public const string InvalidClient = "invalid_client";
}
