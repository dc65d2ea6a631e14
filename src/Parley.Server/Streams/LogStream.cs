using Parley.Hub.Fleet;

namespace Parley.Server.Streams;

/// <summary>
/// <c>/ws/instances/&lt;name&gt;/logs?backlog=N</c> (docs/protocol.md §16): the plain-WebSocket twin of
/// <c>logs:&lt;name&gt;</c>. First frame <c>backlog {lines, count}</c> (N newest lines, default 100, at most
/// 1000), then <c>lines {lines, count}</c> batched in 100 ms windows and <c>rotated</c> on rotation. A
/// consumer that falls behind gets one <c>lines</c> frame with the newest lines and <c>skipped</c>: at least
/// how many lines it missed.
/// </summary>
internal sealed class LogStream(FleetService fleet) : IPlainStream
{
    private const string Suffix = "/logs";

    public string Path => InstanceStream.StreamPath + "/";

    public async ValueTask<IPlainStreamSession> OpenAsync(PlainStreamConnection connection, CancellationToken cancellationToken)
    {
        if (!connection.Subpath.EndsWith(Suffix, StringComparison.Ordinal) || connection.Subpath.Length == Suffix.Length)
        {
            throw new PlainStreamException(404, Parley.Protocol.StreamErrorCodes.NotFound, "the log stream is /ws/instances/<name>/logs");
        }
        var name = Uri.UnescapeDataString(connection.Subpath[..^Suffix.Length]);
        var backlog = LogsChannel.DefaultBacklog;
        foreach (var (key, value) in connection.Params)
        {
            if (key != "backlog")
            {
                throw PlainStreamException.BadParams($"unknown parameter '{(key.Length > 32 ? key[..32] : key)}': a log stream takes backlog");
            }
            if (!int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out backlog) || backlog > LogFeed.MaxBacklog)
            {
                throw PlainStreamException.BadParams($"backlog must be a whole number from 0 to {LogFeed.MaxBacklog}");
            }
        }
        try
        {
            return new Session(await fleet.LogFeedAsync(name, cancellationToken), connection, backlog);
        }
        catch (FleetException ex) when (ex.Code == FleetErrors.NotFound)
        {
            throw new PlainStreamException(404, Parley.Protocol.StreamErrorCodes.NotFound, ex.Message);
        }
    }

    private sealed class Session(LogFeed feed, PlainStreamConnection connection, int backlog) : IPlainStreamSession
    {
        private static readonly byte[] RotatedFrame = PlainFrames.Text(0, static (w, _) =>
        {
            w.WriteStartObject();
            w.WriteString("type"u8, "rotated");
            w.WriteEndObject();
        });

        private IDisposable? _watch;
        private long _lastQueued; // the newest line handed to the connection

        public void Start() => _watch = feed.Watch(backlog,
            lines =>
            {
                _lastQueued = lines.Count > 0 ? lines[^1].Seq : 0;
                connection.SendSnapshot(PlainFrames.Text(lines, static (w, l) => LogsChannel.WriteLines(w, l, "backlog")));
            },
            lines =>
            {
                _lastQueued = lines[^1].Seq;
                connection.SendDelta(PlainFrames.Text(lines, static (w, l) => LogsChannel.WriteLines(w, l, "lines")));
            },
            () => connection.SendDelta(RotatedFrame));

        public void Resync()
        {
            var newest = feed.Tail(Math.Max(backlog, 1));
            var skipped = newest.Count == 0 ? 0 : Math.Max(0, newest[0].Seq - _lastQueued - 1);
            if (newest.Count > 0)
            {
                _lastQueued = newest[^1].Seq;
            }
            connection.SendSnapshot(PlainFrames.Text((newest, skipped), static (w, s) => LogsChannel.WriteLines(w, s.newest, "lines", s.skipped)));
        }

        public void Dispose() => _watch?.Dispose();
    }
}
