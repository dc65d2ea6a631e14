using System.Text.Json;

namespace Parley.Hub.Inbox;

/// <summary>
/// The kinds of <see cref="MessageEvent"/> (docs/protocol.md §16): <c>sent</c> once per message when it is
/// stored; then per recipient <c>queued</c>, <c>delivered</c> (pushed or fetched), <c>read</c> (acked), or
/// <c>failed</c> when handing a queued message over threw (it stays queued and is tried again).
/// </summary>
public static class MessageEventKinds
{
    public const string Sent = "sent";
    public const string Queued = "queued";
    public const string Delivered = "delivered";
    public const string Read = "read";
    public const string Failed = "failed";
}

/// <summary>
/// One state change of a direct message, metadata only: never the body (docs/protocol.md §16).
/// </summary>
/// <param name="MessageId">The message's id (<c>dm-…</c>).</param>
/// <param name="Event">One of <see cref="MessageEventKinds"/>.</param>
/// <param name="From">The sender.</param>
/// <param name="To">For <c>sent</c>: the addresses as the sender gave them; otherwise the one recipient the event is about.</param>
/// <param name="Priority">One of <see cref="DmPriorities"/>.</param>
/// <param name="CorrelationId">The sender's correlation id, or null when none was given.</param>
/// <param name="Detail">Why, for <c>failed</c>; null otherwise.</param>
/// <param name="AtMs">When the change happened (Unix ms).</param>
/// <param name="Participants">Who the event is about: the sender and every recipient for <c>sent</c>, the sender and the one recipient otherwise. Watchers who are not admins see an event only when they are one of them; not sent on the wire.</param>
public sealed record MessageEvent(string MessageId, string Event, string From, string To, string Priority, string? CorrelationId, string? Detail, long AtMs, IReadOnlyList<string> Participants)
{
    /// <summary>The <c>message_type</c> on the wire: every event today is about a direct message.</summary>
    public const string MessageType = "dm";

    /// <summary>True when a watcher named <paramref name="watcher"/> may see this event: hub admins see all, others only their own messages.</summary>
    public bool IsVisibleTo(string watcher, bool isAdmin) => isAdmin || Participants.Contains(watcher, StringComparer.Ordinal);

    /// <summary>True when the event passes a watcher's filters (null = no filter): <paramref name="instance"/> is one of the participants, <paramref name="correlationId"/> matches exactly.</summary>
    public bool Matches(string? instance, string? correlationId) =>
        (instance is null || Participants.Contains(instance, StringComparer.Ordinal))
        && (correlationId is null || string.Equals(CorrelationId, correlationId, StringComparison.Ordinal));

    /// <summary>
    /// Writes the event as a JSON object: <c>{type?, message_id, event, from, to, message_type, priority,
    /// correlation_id?, detail, timestamp}</c>. <paramref name="type"/> null leaves out <c>type</c> (entries of a snapshot).
    /// </summary>
    public void WriteTo(Utf8JsonWriter w, string? type)
    {
        ArgumentNullException.ThrowIfNull(w);
        w.WriteStartObject();
        if (type is not null)
        {
            w.WriteString("type"u8, type);
        }
        w.WriteString("message_id"u8, MessageId);
        w.WriteString("event"u8, Event);
        w.WriteString("from"u8, From);
        w.WriteString("to"u8, To);
        w.WriteString("message_type"u8, MessageType);
        w.WriteString("priority"u8, Priority);
        if (CorrelationId is not null)
        {
            w.WriteString("correlation_id"u8, CorrelationId);
        }
        if (Detail is null)
        {
            w.WriteNull("detail"u8);
        }
        else
        {
            w.WriteString("detail"u8, Detail);
        }
        w.WriteString("timestamp"u8, DateTimeOffset.FromUnixTimeMilliseconds(AtMs).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture));
        w.WriteEndObject();
    }
}

/// <summary>
/// The hub's feed of direct-message state changes: a bounded ring of the most recent events and the live
/// watchers. <see cref="Publish"/> and <see cref="Watch"/> take one lock, so a watcher's snapshot is exactly
/// what precedes the first event it is handed: nothing missed, nothing repeated. Watchers' callbacks run
/// under that lock and must only enqueue (never wait, never call back into this object).
/// </summary>
public sealed class MessageEvents
{
    private readonly Lock _lock = new();
    private readonly MessageEvent[] _ring;
    private int _next;
    private int _count;
    private Action<MessageEvent>[] _watchers = [];

    /// <param name="recentEvents">How many recent events the ring keeps for snapshots (1-10,000; default 100).</param>
    public MessageEvents(int recentEvents = DefaultRecentEvents)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(recentEvents, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(recentEvents, 10_000);
        _ring = new MessageEvent[recentEvents];
    }

    /// <summary>The default size of the ring of recent events.</summary>
    public const int DefaultRecentEvents = 100;

    /// <summary>Live watchers.</summary>
    public int WatcherCount => Volatile.Read(ref _watchers).Length;

    /// <summary>Records <paramref name="messageEvent"/> in the ring and hands it to every watcher, in publish order.</summary>
    public void Publish(MessageEvent messageEvent)
    {
        ArgumentNullException.ThrowIfNull(messageEvent);
        lock (_lock)
        {
            _ring[_next] = messageEvent;
            _next = (_next + 1) % _ring.Length;
            _count = Math.Min(_count + 1, _ring.Length);
            foreach (var watcher in _watchers)
            {
                watcher(messageEvent);
            }
        }
    }

    /// <summary>Publishes several events in order.</summary>
    public void Publish(IEnumerable<MessageEvent> messageEvents)
    {
        ArgumentNullException.ThrowIfNull(messageEvents);
        foreach (var messageEvent in messageEvents)
        {
            Publish(messageEvent);
        }
    }

    /// <summary>
    /// Under the feed's lock: calls <paramref name="onSnapshot"/> with the recent events (oldest first),
    /// then adds <paramref name="onEvent"/> for every later event. Dispose the result to stop watching.
    /// </summary>
    public IDisposable Watch(Action<IReadOnlyList<MessageEvent>> onSnapshot, Action<MessageEvent> onEvent)
    {
        ArgumentNullException.ThrowIfNull(onSnapshot);
        ArgumentNullException.ThrowIfNull(onEvent);
        lock (_lock)
        {
            onSnapshot(RecentLocked());
            _watchers = [.. _watchers, onEvent];
        }
        return new Watcher(this, onEvent);
    }

    /// <summary>Calls <paramref name="onSnapshot"/> with the recent events under the feed's lock (a re-snapshot, ordered with the events around it).</summary>
    public void Snapshot(Action<IReadOnlyList<MessageEvent>> onSnapshot)
    {
        ArgumentNullException.ThrowIfNull(onSnapshot);
        lock (_lock)
        {
            onSnapshot(RecentLocked());
        }
    }

    private List<MessageEvent> RecentLocked()
    {
        var recent = new List<MessageEvent>(_count);
        var start = (_next - _count + _ring.Length) % _ring.Length;
        for (var i = 0; i < _count; i++)
        {
            recent.Add(_ring[(start + i) % _ring.Length]);
        }
        return recent;
    }

    private void Remove(Action<MessageEvent> onEvent)
    {
        lock (_lock)
        {
            var index = Array.IndexOf(_watchers, onEvent);
            if (index >= 0)
            {
                _watchers = [.. _watchers[..index], .. _watchers[(index + 1)..]];
            }
        }
    }

    private sealed class Watcher(MessageEvents owner, Action<MessageEvent> onEvent) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Remove(onEvent);
            }
        }
    }
}
