using Parley.Hub.Connections;

namespace Parley.Hub.Channels;

/// <summary>
/// One topic's live subscribers and the offset delivered to them. Broadcasts and joins meet here
/// under one lock, which is what makes recovery gap-free: a joining subscriber is added in
/// <i>buffering</i> mode at a known head H, replays (since, H] from the store, then receives the
/// live frames (offsets &gt; H) that arrived meanwhile — each message exactly once, in order.
/// </summary>
public sealed class Topic
{
    private readonly object _lock = new();
    private readonly HubMetrics _metrics;
    // Guarded by _lock. Add and remove are O(1) (a subscriber knows its index; removal moves the last
    // one into the hole), so a reconnect storm of N subscribers costs O(N), not O(N²) array copies that
    // would land on the large-object heap once a topic has ~10k subscribers.
    private readonly List<Subscriber> _subscribers = [];
    private int _subscriberCount;
    private long _deliveredHead;
    private bool _headKnown;

    private readonly TopicRegistry? _registry;
    private bool _evicted;

    internal Topic(string name, HubMetrics metrics, TopicRegistry? registry = null)
    {
        Name = name;
        _metrics = metrics;
        _registry = registry;
    }

    /// <summary>The topic name.</summary>
    public string Name { get; }

    /// <summary>The lock that orders this topic's subscriber list, publishes and presence.</summary>
    internal object SyncRoot => _lock;

    // Created on the first tracked presence; topics without presence (hub:lobby) never pay for it.
    private Presence.TopicPresence? _presence;

    internal Presence.TopicPresence GetPresence(Presence.PresenceTracker tracker)
    {
        lock (_lock)
        {
            return _presence ??= new Presence.TopicPresence(this, tracker);
        }
    }

    /// <summary>The topic's presence, or null when nothing was ever tracked on it.</summary>
    internal Presence.TopicPresence? PresenceOrNull => Volatile.Read(ref _presence);

    /// <summary>Current subscriber count.</summary>
    public int SubscriberCount => Volatile.Read(ref _subscriberCount);

    /// <summary>
    /// Adds a subscriber that buffers live frames until <see cref="CompleteSubscribe"/>, and returns the
    /// head H up to which the caller must replay from the store. <paramref name="storeHead"/> is the
    /// store's committed head read just before; it only matters for the first subscriber, before the
    /// topic has seen any publish.
    /// </summary>
    /// <returns>null when this topic object was evicted meanwhile (its last subscriber left): get a fresh one from the registry and retry.</returns>
    public Subscriber? BeginSubscribe(HubConnection connection, string joinRef, long storeHead, out long replayThrough)
    {
        var subscriber = new Subscriber(this, connection, joinRef);
        lock (_lock)
        {
            if (_evicted)
            {
                replayThrough = 0;
                return null;
            }
            if (!_headKnown)
            {
                _deliveredHead = Math.Max(_deliveredHead, storeHead);
                _headKnown = true;
            }
            replayThrough = _deliveredHead;
            subscriber.Index = _subscribers.Count;
            _subscribers.Add(subscriber);
            Volatile.Write(ref _subscriberCount, _subscribers.Count);
        }
        return subscriber;
    }

    /// <summary>Sends the frames buffered during replay and switches the subscriber to live delivery.</summary>
    public void CompleteSubscribe(Subscriber subscriber)
    {
        lock (_lock)
        {
            if (subscriber.Buffered is { } buffered)
            {
                foreach (var frame in buffered)
                {
                    if (!subscriber.Connection.Send(frame))
                    {
                        break;
                    }
                }
                _metrics.Delivered(buffered.Count);
            }
            subscriber.Buffered = null;
            subscriber.IsBuffering = false;
        }
    }

    /// <summary>Removes a subscriber (leave, rejoin or disconnect). Idempotent.</summary>
    public void Unsubscribe(Subscriber subscriber)
    {
        lock (_lock)
        {
            var index = subscriber.Index;
            if (index < 0 || index >= _subscribers.Count || !ReferenceEquals(_subscribers[index], subscriber))
            {
                return;
            }
            var last = _subscribers.Count - 1;
            if (index != last)
            {
                var moved = _subscribers[last];
                _subscribers[index] = moved;
                moved.Index = index;
            }
            _subscribers.RemoveAt(last);
            subscriber.Index = -1;
            if (_subscribers.Capacity > 1024 && _subscribers.Count < _subscribers.Capacity / 4)
            {
                _subscribers.Capacity = _subscribers.Count * 2; // a crowd left: give the array back
            }
            Volatile.Write(ref _subscriberCount, _subscribers.Count);
            if (_subscribers.Count == 0 && _registry is not null)
            {
                // Nobody listens: drop the live state so joins of throwaway topics cannot grow memory.
                // A joiner holding this object sees _evicted and retries with a fresh one.
                _evicted = true;
                _registry.Remove(this);
            }
        }
    }

    /// <summary>
    /// Delivers a committed message's pre-encoded frame to every subscriber. Called in offset order by
    /// the append pipeline. Never waits: a full subscriber is closed by its transport, not waited for.
    /// </summary>
    public void Publish(long offset, byte[] frame) => PublishBatch([(offset, frame)]);

    /// <summary>
    /// Delivers several committed messages (ascending offsets) at once: each live subscriber gets them as
    /// one queued unit — one wake-up and one flush instead of one per message.
    /// </summary>
    public void PublishBatch(IReadOnlyList<(long Offset, byte[] Frame)> messages)
    {
        lock (_lock)
        {
            var start = 0;
            while (start < messages.Count && messages[start].Offset <= _deliveredHead)
            {
                start++; // already covered by a joiner's replay bound (see BeginSubscribe)
            }
            if (start == messages.Count)
            {
                return;
            }
            var frames = new byte[messages.Count - start][];
            for (var i = start; i < messages.Count; i++)
            {
                frames[i - start] = messages[i].Frame;
            }
            _deliveredHead = messages[^1].Offset;
            var batch = new FrameBatch(frames);
            var delivered = 0;
            for (var i = 0; i < _subscribers.Count; i++)
            {
                var subscriber = _subscribers[i];
                if (subscriber.IsBuffering)
                {
                    var buffered = subscriber.Buffered ??= [];
                    buffered.AddRange(frames);
                    subscriber.BufferedBytes += batch.TotalBytes;
                    if (subscriber.BufferedBytes > subscriber.Connection.MaxBufferedBytesDuringReplay)
                    {
                        subscriber.Connection.CloseSlowConsumer();
                    }
                }
                else if (subscriber.Connection.Send(batch))
                {
                    delivered += frames.Length;
                }
            }
            _metrics.Delivered(delivered);
        }
    }

    /// <summary>
    /// Sends a frame that is not part of the durable history (e.g. a presence diff) to every live
    /// subscriber. Not counted as a delivered message. Returns how many subscribers took it.
    /// </summary>
    public int Broadcast(byte[] frame) => Broadcast(frame, trackedOnly: false);

    // Presence diffs go only to subscriptions presence tracks: a presence: false join hears none.
    internal int Broadcast(byte[] frame, bool trackedOnly)
    {
        var delivered = 0;
        lock (_lock)
        {
            for (var i = 0; i < _subscribers.Count; i++)
            {
                var subscriber = _subscribers[i];
                if (!subscriber.IsBuffering && (!trackedOnly || subscriber.Presence is not null) && subscriber.Connection.Send(frame))
                {
                    delivered++;
                }
            }
        }
        return delivered;
    }
}

/// <summary>One connection's membership in one topic, for one join.</summary>
public sealed class Subscriber
{
    internal Subscriber(Topic topic, HubConnection connection, string joinRef)
    {
        Topic = topic;
        Connection = connection;
        JoinRef = joinRef;
    }

    public Topic Topic { get; }
    public HubConnection Connection { get; }

    /// <summary>The <c>join_ref</c> of the join that created this subscription.</summary>
    public string JoinRef { get; }

    // Set when the subscription's presence is tracked; removed exactly once (see PresenceTracker.Untrack).
    internal Presence.PresenceEntry? Presence { get; set; }

    internal bool IsBuffering { get; set; } = true;

    // Position in the topic's subscriber list; -1 once removed. Guarded by the topic's lock.
    internal int Index { get; set; } = -1;
    internal List<byte[]>? Buffered { get; set; }
    internal long BufferedBytes { get; set; }
}

/// <summary>All topics with live state: created on join, removed when the last subscriber leaves.</summary>
public sealed class TopicRegistry(HubMetrics metrics)
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Topic> _topics = new(StringComparer.Ordinal);

    /// <summary>The topic, created if new.</summary>
    public Topic GetOrAdd(string name) => _topics.GetOrAdd(name, static (n, registry) => new Topic(n, registry._metrics, registry), this);

    private readonly HubMetrics _metrics = metrics;

    internal void Remove(Topic topic) => _topics.TryRemove(new KeyValuePair<string, Topic>(topic.Name, topic));

    /// <summary>The topic if it has live state (someone joined it and has not left).</summary>
    public bool TryGet(string name, out Topic? topic) => _topics.TryGetValue(name, out topic);

    /// <summary>Every topic with live state (a snapshot).</summary>
    public IReadOnlyList<Topic> Snapshot() => [.. _topics.Values];

    /// <summary>Number of topics with live state.</summary>
    public int Count => _topics.Count;
}
