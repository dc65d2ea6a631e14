using System.Collections.Concurrent;
using System.Text.Json;
using Parley.Hub.Channels;
using Parley.Protocol;

namespace Parley.Hub.Inbox;

/// <summary>
/// <c>events:messages</c> (docs/protocol.md §16): the Phoenix way to watch direct-message state changes.
/// The join (params <c>instance</c>, <c>correlation_id</c>, both optional filters) replies ok, then pushes
/// <c>snapshot {type, recent_events}</c> and a <c>message_event</c> for every later change the watcher may
/// see and the filters pass. Events carry metadata only, never bodies. A watcher that is not a hub admin
/// sees only messages it sent or received.
/// </summary>
public sealed class MessageEventsChannel(ParleyHub hub, MessageEvents events) : IChannelHandler
{
    /// <summary>The one topic served.</summary>
    public const string TopicName = "events:messages";

    /// <summary>Longest <c>instance</c> filter, in characters.</summary>
    public const int MaxInstanceLength = 64;

    private readonly ConcurrentDictionary<Subscriber, IDisposable> _watches = new();

    /// <inheritdoc />
    public string TopicPrefix => TopicName;

    /// <summary>Checks the filters of a watch; returns null when they are valid, else what is wrong.</summary>
    public static string? ValidateFilters(string? instance, string? correlationId)
    {
        if (instance is not null && (instance.Length is 0 or > MaxInstanceLength))
        {
            return $"instance must be a name of 1-{MaxInstanceLength} characters";
        }
        if (correlationId is not null && (correlationId.Length is 0 or > InboxChannel.MaxCorrelationIdLength))
        {
            return $"correlation_id must be a string of 1-{InboxChannel.MaxCorrelationIdLength} characters";
        }
        return null;
    }

    /// <inheritdoc />
    public ValueTask<Subscriber?> JoinAsync(ChannelRequest request, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (message.Topic != TopicName)
        {
            connection.ReplyError(message, ErrorReasons.InvalidTopic, $"the only events topic here is {TopicName}");
            return ValueTask.FromResult<Subscriber?>(null);
        }
        if (!TryFilter(message.Payload, "instance"u8, out var instance) || !TryFilter(message.Payload, "correlation_id"u8, out var correlationId)
            || ValidateFilters(instance, correlationId) is not null)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "join params: instance and correlation_id, optional strings of 1-64 characters");
            return ValueTask.FromResult<Subscriber?>(null);
        }
        var principal = connection.Principal;
        Topic topic;
        Subscriber? subscriber;
        do
        {
            topic = hub.Topics.GetOrAdd(TopicName);
            subscriber = topic.BeginSubscribe(connection, message.JoinRef ?? message.Ref ?? "", storeHead: 0, out _);
        }
        while (subscriber is null);
        var joinRef = subscriber.JoinRef;
        bool Passes(MessageEvent e) => e.IsVisibleTo(principal.Name, principal.IsAdmin) && e.Matches(instance, correlationId);
        byte[] Snapshot(IReadOnlyList<MessageEvent> recent) =>
            WireFrames.Text(joinRef, null, TopicName, "snapshot", recent.Where(Passes).ToList(), static (w, list) => WriteSnapshot(w, list));
        // A watcher that fell behind gets a fresh snapshot, taken under the feed's lock like the first one.
        var sender = new ResyncingSender(connection, hub.Options.EffectiveStreamLagBytes, s =>
        {
            events.Snapshot(recent => s.SendSnapshot(Snapshot(recent)));
            return ValueTask.CompletedTask;
        });
        // Under the feed's lock: reply, snapshot, then live events, so the snapshot is exactly what precedes them.
        var feedWatch = events.Watch(
            recent =>
            {
                connection.ReplyOk(message, 0, static (w, _) => { w.WriteStartObject(); w.WriteEndObject(); });
                sender.SendSnapshot(Snapshot(recent));
            },
            e =>
            {
                if (Passes(e))
                {
                    sender.SendDelta(WireFrames.Text(joinRef, null, TopicName, "message_event", e, static (w, ev) => ev.WriteTo(w, "message_event")));
                }
            });
        var watch = new CompositeWatch(feedWatch, sender);
        _watches[subscriber] = watch;
        topic.CompleteSubscribe(subscriber);
        return ValueTask.FromResult<Subscriber?>(subscriber);
    }

    /// <inheritdoc />
    public ValueTask HandleAsync(ChannelRequest request, Subscriber subscriber, CancellationToken cancellationToken)
    {
        request.Connection.ReplyError(request.Message, ErrorReasons.UnknownEvent, $"{TopicName} only pushes; it takes no events");
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

    /// <summary>Writes <c>{type: "snapshot", recent_events: [...]}</c>.</summary>
    public static void WriteSnapshot(Utf8JsonWriter w, IEnumerable<MessageEvent> recent)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(recent);
        w.WriteStartObject();
        w.WriteString("type"u8, "snapshot");
        w.WriteStartArray("recent_events"u8);
        foreach (var e in recent)
        {
            e.WriteTo(w, null);
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static bool TryFilter(JsonElement payload, ReadOnlySpan<byte> name, out string? value)
    {
        value = null;
        if (payload.ValueKind != JsonValueKind.Object || !payload.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return payload.ValueKind is JsonValueKind.Object or JsonValueKind.Undefined or JsonValueKind.Null;
        }
        value = element.ValueKind == JsonValueKind.String ? element.GetString() : "";
        return element.ValueKind == JsonValueKind.String;
    }

    private sealed class CompositeWatch(IDisposable feedWatch, ResyncingSender sender) : IDisposable
    {
        public void Dispose()
        {
            feedWatch.Dispose();
            sender.Dispose();
        }
    }
}
