using System.Collections.Concurrent;
using System.Text.Json;
using Parley.Hub.Channels;
using Parley.Protocol;

namespace Parley.Hub.Fleet;

/// <summary>
/// <c>logs:&lt;instance&gt;</c> (docs/protocol.md §15, log tails): any connection may watch. Join param
/// <c>backlog</c> (0–1000, default 100); after the ok reply comes <c>backlog {lines, count}</c>, then
/// <c>lines {lines, count}</c> batched in 100 ms windows, and <c>rotated {}</c> when the log file rotates.
/// Lines are the stored log lines (<c>&lt;receive time&gt; &lt;stdout|stderr|hub&gt; &lt;text&gt;</c>).
/// </summary>
public sealed class LogsChannel : IChannelHandler
{
    /// <summary>Lines sent on join when the client does not say.</summary>
    public const int DefaultBacklog = 100;

    private const string Prefix = "logs:";
    private readonly ConcurrentDictionary<Subscriber, Tail> _watches = new();
    private readonly ParleyHub _hub;
    private readonly FleetService _fleet;

    public LogsChannel(ParleyHub hub, FleetService fleet)
    {
        ArgumentNullException.ThrowIfNull(hub);
        ArgumentNullException.ThrowIfNull(fleet);
        _hub = hub;
        _fleet = fleet;
        // A deleted instance has no log to follow: its tails end with phx_close (a server-side leave).
        fleet.Changed += change =>
        {
            if (change.Kind == FleetEvent.Deleted)
            {
                var topic = Prefix + change.Instance.Name;
                foreach (var subscriber in _watches.Keys.Where(s => s.Topic.Name == topic).ToList())
                {
                    subscriber.Connection.RemoveSubscription(topic, sendClose: true);
                }
            }
        };
    }

    /// <inheritdoc />
    public string TopicPrefix => Prefix;

    /// <summary>Reads <c>backlog</c>: absent or null → 100; 0–1000; otherwise null with the reason in <paramref name="error"/>.</summary>
    public static int? ReadBacklog(JsonElement value, out string error)
    {
        error = $"backlog must be a whole number from 0 to {LogFeed.MaxBacklog}";
        return value.ValueKind switch
        {
            JsonValueKind.Undefined or JsonValueKind.Null => DefaultBacklog,
            JsonValueKind.Number when value.TryGetInt32(out var n) && n is >= 0 and <= LogFeed.MaxBacklog => n,
            _ => null,
        };
    }

    /// <inheritdoc />
    public async ValueTask<Subscriber?> JoinAsync(ChannelRequest request, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        var name = message.Topic[Prefix.Length..];
        var requested = message.Payload.ValueKind == JsonValueKind.Object && message.Payload.TryGetProperty("backlog"u8, out var b) ? b : default;
        if (ReadBacklog(requested, out var error) is not { } backlog)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, error);
            return null;
        }
        LogFeed feed;
        try
        {
            feed = await _fleet.LogFeedAsync(name, cancellationToken);
        }
        catch (FleetException ex)
        {
            connection.ReplyError(message, ex.Code, ex.Message);
            return null;
        }
        Topic topic;
        Subscriber? subscriber;
        do
        {
            topic = _hub.Topics.GetOrAdd(message.Topic);
            subscriber = topic.BeginSubscribe(connection, message.JoinRef ?? message.Ref ?? "", storeHead: 0, out _);
        }
        while (subscriber is null);
        connection.ReplyOk(message, 0, static (w, _) =>
        {
            w.WriteStartObject();
            w.WriteEndObject();
        });
        topic.CompleteSubscribe(subscriber);
        var tail = new Tail(feed, message.Topic, backlog);
        tail.Sender = new ResyncingSender(connection, _hub.Options.EffectiveStreamLagBytes, _ => tail.Resync());
        var joinRef = subscriber.JoinRef;
        tail.Watch = feed.Watch(backlog,
            lines => tail.Backlog(WireFrames.Text(joinRef, null, message.Topic, "backlog", lines, WriteLines), lines),
            tail.Lines,
            tail.Rotated);
        if (!_watches.TryAdd(subscriber, tail))
        {
            tail.Dispose();
        }
        return subscriber;
    }

    /// <inheritdoc />
    public ValueTask HandleAsync(ChannelRequest request, Subscriber subscriber, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        connection.ReplyError(message, ErrorReasons.UnknownEvent, "log topics take no pushes: join to follow, leave to stop");
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public void OnLeft(Subscriber subscriber)
    {
        if (_watches.TryRemove(subscriber, out var watch))
        {
            watch.Dispose();
        }
    }

    /// <summary>Writes <c>{lines: [...], count}</c>.</summary>
    public static void WriteLines(Utf8JsonWriter w, IReadOnlyList<LogLine> lines) => WriteLines(w, lines, type: null);

    /// <summary>Writes <c>{type?, lines: [...], count, skipped?}</c> (the plain stream adds a type, and <c>skipped</c> after falling behind).</summary>
    public static void WriteLines(Utf8JsonWriter w, IReadOnlyList<LogLine> lines, string? type, long? skipped = null)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(lines);
        w.WriteStartObject();
        if (type is not null)
        {
            w.WriteString("type"u8, type);
        }
        w.WriteStartArray("lines"u8);
        foreach (var line in lines)
        {
            w.WriteStringValue(line.Text);
        }
        w.WriteEndArray();
        w.WriteNumber("count"u8, lines.Count);
        if (skipped is { } n)
        {
            w.WriteNumber("skipped"u8, n);
        }
        w.WriteEndObject();
    }

    // One watcher's tail. Deltas and the resync take the same lock, and lines at or below the newest one
    // queued are left out, so a resync's newest lines are never repeated by a batch that raced it.
    private sealed class Tail(LogFeed feed, string topic, int backlog) : IDisposable
    {
        private readonly Lock _lock = new();
        private long _lastQueued;

        public ResyncingSender Sender { get; set; } = null!;

        public IDisposable? Watch { get; set; }

        public void Backlog(byte[] frame, IReadOnlyList<LogLine> lines)
        {
            lock (_lock)
            {
                _lastQueued = lines.Count > 0 ? lines[^1].Seq : 0;
                Sender.SendSnapshot(frame);
            }
        }

        public void Lines(IReadOnlyList<LogLine> lines)
        {
            lock (_lock)
            {
                var fresh = lines.Count > 0 && lines[0].Seq > _lastQueued ? lines : [.. lines.Where(l => l.Seq > _lastQueued)];
                if (fresh.Count > 0 && Sender.SendDelta(WireFrames.Text(null, null, topic, "lines", fresh, WriteLines)))
                {
                    _lastQueued = fresh[^1].Seq;
                }
            }
        }

        public void Rotated()
        {
            lock (_lock)
            {
                Sender.SendDelta(WireFrames.Text(null, null, topic, "rotated", 0, static (w, _) =>
                {
                    w.WriteStartObject();
                    w.WriteEndObject();
                }));
            }
        }

        // The newest lines (as many as the join asked for, at least one) with skipped: how many lines between
        // the last one queued and these the watcher will never see.
        public ValueTask Resync()
        {
            lock (_lock)
            {
                var last = _lastQueued;
                // What was queued before the lag still arrives: only lines after it are new to the watcher.
                var newest = feed.Tail(Math.Max(backlog, 1)).Where(l => l.Seq > last).ToList();
                var skipped = newest.Count == 0 ? 0 : Math.Max(0, newest[0].Seq - _lastQueued - 1);
                if (newest.Count > 0)
                {
                    _lastQueued = Math.Max(_lastQueued, newest[^1].Seq);
                }
                Sender.SendSnapshot(WireFrames.Text(null, null, topic, "lines", (newest, skipped), static (w, s) => WriteLines(w, s.newest, type: null, s.skipped)));
            }
            return ValueTask.CompletedTask;
        }

        public void Dispose()
        {
            Watch?.Dispose();
            Sender.Dispose();
        }
    }
}
