using Parley.Hub.Inbox;

namespace Parley.Server.Streams;

/// <summary>
/// <c>/ws/messages?instance=…&amp;correlation_id=…</c> (docs/protocol.md §16): the plain-WebSocket twin of
/// <c>events:messages</c>. First frame <c>snapshot {recent_events}</c>, then a <c>message_event</c> per
/// state change the watcher may see and the filters pass; metadata only, never bodies.
/// </summary>
internal sealed class MessageEventStream(MessageEvents events) : IPlainStream
{
    /// <summary>The path served.</summary>
    public const string StreamPath = "/ws/messages";

    // Watchers' callbacks run one at a time under the feed's lock, so one cached frame encodes each event once for all of them.
    private MessageEvent? _lastEvent;
    private byte[]? _lastFrame;

    public string Path => StreamPath;

    public ValueTask<IPlainStreamSession> OpenAsync(PlainStreamConnection connection, CancellationToken cancellationToken)
    {
        var instance = connection.Params.TryGetValue("instance", out var i) ? i : null;
        var correlationId = connection.Params.TryGetValue("correlation_id", out var c) ? c : null;
        foreach (var name in connection.Params.Keys)
        {
            if (name is not ("instance" or "correlation_id"))
            {
                throw PlainStreamException.BadParams($"unknown parameter '{(name.Length > 32 ? name[..32] : name)}': /ws/messages takes instance and correlation_id");
            }
        }
        if (MessageEventsChannel.ValidateFilters(instance, correlationId) is { } invalid)
        {
            throw PlainStreamException.BadParams(invalid);
        }
        return ValueTask.FromResult<IPlainStreamSession>(new Session(this, connection, instance, correlationId));
    }

    private byte[] FrameOf(MessageEvent e)
    {
        if (!ReferenceEquals(e, _lastEvent))
        {
            _lastFrame = PlainFrames.Text(e, static (w, ev) => ev.WriteTo(w, "message_event"));
            _lastEvent = e;
        }
        return _lastFrame!;
    }

    private sealed class Session(MessageEventStream owner, PlainStreamConnection connection, string? instance, string? correlationId) : IPlainStreamSession
    {
        private IDisposable? _watch;

        private bool Passes(MessageEvent e) => e.IsVisibleTo(connection.Principal.Name, connection.Principal.IsAdmin) && e.Matches(instance, correlationId);

        private void SendSnapshot(IReadOnlyList<MessageEvent> recent) =>
            connection.SendSnapshot(PlainFrames.Text(recent.Where(Passes).ToList(), static (w, list) => MessageEventsChannel.WriteSnapshot(w, list)));

        public void Start() => _watch = owner.Events.Watch(SendSnapshot, e =>
        {
            if (Passes(e))
            {
                connection.SendDelta(owner.FrameOf(e));
            }
        });

        public void Resync() => owner.Events.Snapshot(SendSnapshot);

        public void Dispose() => _watch?.Dispose();
    }

    private MessageEvents Events => events;
}
