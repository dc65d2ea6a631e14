using Microsoft.Extensions.Logging;

namespace Parley.Server;

/// <summary>The server's log messages, with stable event ids (2xx).</summary>
internal static partial class ServerLog
{
    [LoggerMessage(200, LogLevel.Debug, "Connection {ConnectionId} opened for {Principal} from {Remote}")]
    public static partial void Connected(ILogger logger, string connectionId, string principal, string? remote);

    [LoggerMessage(201, LogLevel.Debug, "Connection {ConnectionId} ended")]
    public static partial void Disconnected(ILogger logger, string connectionId);

    [LoggerMessage(202, LogLevel.Warning, "Connection rejected from {Remote}: {Reason}")]
    public static partial void ConnectRejected(ILogger logger, string? remote, string reason);

    [LoggerMessage(203, LogLevel.Warning, "Connection {ConnectionId} is a slow consumer (outbound queue over {Limit} bytes); closing")]
    public static partial void SlowConsumer(ILogger logger, string connectionId, int limit);

    [LoggerMessage(204, LogLevel.Debug, "Closing connection {ConnectionId}: {Code} {Reason}")]
    public static partial void Closing(ILogger logger, string connectionId, ushort code, string reason);

    [LoggerMessage(205, LogLevel.Error, "Connection {ConnectionId} failed")]
    public static partial void ConnectionFailed(ILogger logger, string connectionId, Exception exception);

    [LoggerMessage(206, LogLevel.Information, "Parley hub listening on {Urls}; data in {DataDir}")]
    public static partial void Listening(ILogger logger, string urls, string dataDir);

    [LoggerMessage(207, LogLevel.Information, "Parley hub stopped")]
    public static partial void Stopped(ILogger logger);
}
