using Microsoft.Extensions.Logging;

namespace Parley.Server.Streams;

/// <summary>Log messages of the plain JSON WebSocket streams, with stable event ids (26x).</summary>
internal static partial class StreamLog
{
    [LoggerMessage(260, LogLevel.Debug, "Stream {ConnectionId} opened on {Path} for {Principal} from {Remote}")]
    public static partial void Opened(ILogger logger, string connectionId, string path, string principal, string? remote);

    [LoggerMessage(261, LogLevel.Debug, "Stream {ConnectionId} ended")]
    public static partial void Ended(ILogger logger, string connectionId);

    [LoggerMessage(262, LogLevel.Debug, "Closing stream {ConnectionId}: {Code} {Reason}")]
    public static partial void Closing(ILogger logger, string connectionId, ushort code, string reason);

    [LoggerMessage(263, LogLevel.Information, "Stream {ConnectionId} fell behind (over {Limit} queued deltas); dropping them and sending a fresh snapshot")]
    public static partial void Resync(ILogger logger, string connectionId, int limit);

    [LoggerMessage(264, LogLevel.Error, "Stream {ConnectionId} failed")]
    public static partial void Failed(ILogger logger, string connectionId, Exception exception);
}
