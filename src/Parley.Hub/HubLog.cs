using Microsoft.Extensions.Logging;

namespace Parley.Hub;

/// <summary>The hub core's log messages, with stable event ids (1xx).</summary>
internal static partial class HubLog
{
    [LoggerMessage(100, LogLevel.Error, "Join of {Topic} crashed on connection {ConnectionId}")]
    public static partial void JoinCrashed(ILogger logger, string topic, string connectionId, Exception exception);

    [LoggerMessage(101, LogLevel.Error, "Handling {PhoenixEvent} on {Topic} failed on connection {ConnectionId}")]
    public static partial void HandlerFailed(ILogger logger, string topic, string phoenixEvent, string connectionId, Exception exception);

    [LoggerMessage(102, LogLevel.Warning, "Connection {ConnectionId} closed: rate limit exceeded repeatedly")]
    public static partial void RateLimitClose(ILogger logger, string connectionId);

    [LoggerMessage(103, LogLevel.Error, "Store append of {Count} messages failed; pushers got internal_error")]
    public static partial void AppendFailed(ILogger logger, int count, Exception exception);

    [LoggerMessage(104, LogLevel.Information, "Retention removed {Count} messages")]
    public static partial void RetentionTrimmed(ILogger logger, long count);

    [LoggerMessage(105, LogLevel.Error, "Retention failed")]
    public static partial void RetentionFailed(ILogger logger, Exception exception);

    [LoggerMessage(106, LogLevel.Information, "Connection {ConnectionId} idle for {IdleMs} ms; closing")]
    public static partial void IdleClose(ILogger logger, string connectionId, long idleMs);

    [LoggerMessage(112, LogLevel.Information, "Connection {ConnectionId} of {Name}: credential expired; closing with 4401")]
    public static partial void CredentialExpired(ILogger logger, string connectionId, string name);

    [LoggerMessage(113, LogLevel.Information, "Connection {ConnectionId} of {Name}: closing with {Code} ({Reason})")]
    public static partial void ClosedByPolicy(ILogger logger, string connectionId, string name, ushort code, string reason);

    [LoggerMessage(108, LogLevel.Error, "Replay of {Topic} failed on connection {ConnectionId}; sent phx_error so the client rejoins")]
    public static partial void ReplayFailed(ILogger logger, string topic, string connectionId, Exception exception);

    [LoggerMessage(114, LogLevel.Error, "Sending the presence diff of {Topic} failed")]
    public static partial void PresenceFlushFailed(ILogger logger, string topic, Exception exception);

    [LoggerMessage(109, LogLevel.Error, "Delivering a committed batch failed")]
    public static partial void DeliveryFailed(ILogger logger, Exception exception);

    [LoggerMessage(110, LogLevel.Error, "Closing connection {ConnectionId} failed")]
    public static partial void CloseFailed(ILogger logger, string connectionId, Exception exception);

    [LoggerMessage(111, LogLevel.Error, "Shutdown could not flush every pending append within {TimeoutMs} ms")]
    public static partial void ShutdownFlushTimedOut(ILogger logger, double timeoutMs);

    [LoggerMessage(107, LogLevel.Information, "Shutting down: flushing {Pending} pending appends, closing {Connections} connections")]
    public static partial void ShuttingDown(ILogger logger, int pending, long connections);

    [LoggerMessage(120, LogLevel.Information, "Connection {ConnectionId} fell behind on a snapshot stream ({BudgetBytes} bytes queued): its deltas are dropped until a fresh snapshot")]
    public static partial void StreamLagging(ILogger logger, string connectionId, long budgetBytes);

    [LoggerMessage(121, LogLevel.Error, "Resyncing connection {ConnectionId} on a snapshot stream failed; retrying")]
    public static partial void StreamResyncFailed(ILogger logger, string connectionId, Exception exception);
}
