using System.Collections.Concurrent;
using System.Text.Json;
using Parley.Hub.Channels;
using Parley.Hub.Connections;
using Parley.Protocol;

namespace Parley.Hub.Presence;

/// <summary>
/// Who is on which topic, in memory only (a restarted hub starts empty; docs/protocol.md §Presence).
/// Channel handlers call <see cref="Track"/> once a join is complete; the connection untracks on every
/// way a subscription ends (leave, rejoin, server close, socket gone), exactly once. Keys are principal
/// names; each tracked subscription is one meta. Status, summary and hidden are per user: a
/// <c>presence.update</c> on <c>hub:lobby</c> changes them on every topic every connection of the
/// user is tracked on. Normal <c>msg</c> fan-out never touches presence.
/// </summary>
public sealed class PresenceTracker : IDisposable
{
    /// <summary>The <c>hub:lobby</c> event that sets the caller's <c>{status?, summary?, hidden?}</c>.</summary>
    public const string UpdateEvent = "presence.update";

    private readonly ParleyHub _hub;
    private readonly ConcurrentDictionary<string, PresenceUser> _users = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<TopicPresence> _due = new();
    private readonly ITimer _timer;
    // A random prefix per hub run keeps phx_refs unique across restarts: phoenix.js keeps a meta whose
    // ref it already knows, so a reused ref would hide a change.
    private readonly string _refPrefix = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6)).Replace('+', '-').Replace('/', '_');
    private long _nextRef;
    private int _armed;

    internal PresenceTracker(ParleyHub hub)
    {
        _hub = hub;
        BatchInterval = hub.Options.PresenceBatchInterval;
        _timer = hub.Time.CreateTimer(static state => ((PresenceTracker)state!).FlushDue(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>See <see cref="HubOptions.PresenceBatchInterval"/>.</summary>
    public TimeSpan BatchInterval { get; }

    /// <summary>Raised after a user's status changed (user name, new status), outside any presence lock.</summary>
    public event Action<string, string>? StatusChanged;

    /// <summary>The user's status while they have a connection (per user, across connections); <c>idle</c> otherwise.</summary>
    public string StatusOf(string user) => _users.TryGetValue(user, out var found) ? found.Status : PresenceValues.DefaultStatus;

    /// <summary>Users with at least one connection that tracked a presence or set a status.</summary>
    public int UserCount => _users.Count;

    /// <summary>
    /// Reads the optional <c>client</c> join param. Returns false with an error detail when it is there
    /// but not a client kind; <paramref name="client"/> is null when the param is absent.
    /// </summary>
    public static bool TryReadClient(JsonElement joinParams, out string? client, out string error)
    {
        client = null;
        error = "";
        if (joinParams.ValueKind != JsonValueKind.Object || !joinParams.TryGetProperty("client"u8, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }
        client = element.ValueKind == JsonValueKind.String ? PresenceValues.ParseClient(element.GetString()) : null;
        if (client is null)
        {
            error = $"client must be one of {string.Join(", ", PresenceValues.Clients)}";
            return false;
        }
        return true;
    }

    /// <summary>
    /// Tracks a completed subscription: sends the subscriber <c>presence_state</c> (with its join_ref),
    /// then announces it to the topic in the next <c>presence_diff</c> unless its user is hidden.
    /// <paramref name="client"/> (a join param) overrides the connection's client kind.
    /// </summary>
    public void Track(Subscriber subscriber, string? client = null)
    {
        ArgumentNullException.ThrowIfNull(subscriber);
        var connection = subscriber.Connection;
        // Only the connection's read loop tracks and updates, so this lazy attach needs no lock.
        var user = connection.PresenceUser ??= Attach(connection.Principal.Name);
        var topicPresence = subscriber.Topic.GetPresence(this);
        lock (user)
        {
            var entry = new PresenceEntry(user, topicPresence, client ?? connection.ClientKind, _hub.NowMs);
            subscriber.Presence = entry;
            user.Entries.Add(entry);
            lock (topicPresence.Topic.SyncRoot)
            {
                topicPresence.SendStateLocked(subscriber);
                if (!user.Hidden)
                {
                    entry.Meta = NewMeta(entry, null);
                    topicPresence.Join(user.Name, entry.Meta);
                }
            }
        }
    }

    /// <summary>Stops tracking a subscription; its meta leaves in the next diff. Idempotent.</summary>
    public void Untrack(Subscriber subscriber)
    {
        ArgumentNullException.ThrowIfNull(subscriber);
        if (subscriber.Presence is not { } entry)
        {
            return;
        }
        var user = entry.User;
        lock (user)
        {
            if (entry.Removed)
            {
                return;
            }
            entry.Removed = true;
            user.Entries.Remove(entry);
            if (entry.Meta is { } meta)
            {
                entry.Meta = null;
                entry.Topic.Leave(user.Name, meta);
            }
        }
    }

    /// <summary>Called once when a connection is gone, after its subscriptions were untracked.</summary>
    internal void ConnectionClosed(HubConnection connection)
    {
        if (connection.PresenceUser is not { } user)
        {
            return;
        }
        string lastStatus;
        lock (user)
        {
            if (--user.Connections > 0)
            {
                return;
            }
            user.Dead = true;
            lastStatus = user.Status;
        }
        _users.TryRemove(new KeyValuePair<string, PresenceUser>(user.Name, user));
        if (!string.Equals(lastStatus, PresenceValues.DefaultStatus, StringComparison.Ordinal))
        {
            // The status lived with the user's connections; it is idle again (what waited for it may go now).
            StatusChanged?.Invoke(user.Name, PresenceValues.DefaultStatus);
        }
    }

    private PresenceUser Attach(string name)
    {
        while (true)
        {
            var user = _users.GetOrAdd(name, static n => new PresenceUser(n));
            lock (user)
            {
                if (!user.Dead)
                {
                    user.Connections++;
                    return user;
                }
            }
            _users.TryRemove(new KeyValuePair<string, PresenceUser>(name, user));
        }
    }

    /// <summary>
    /// Sets the user's status, summary and visibility (a null argument keeps the current value; an empty
    /// <paramref name="summary"/> clears it) and re-announces every tracked presence of the user whose
    /// meta changed: a leave of the old meta and a join of the new one with <c>phx_ref_prev</c>. Values
    /// must already be valid (see <see cref="PresenceValues"/>).
    /// </summary>
    public (string Status, string? Summary, bool Hidden) Update(HubConnection connection, string? status, string? summary, bool? hidden)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var user = connection.PresenceUser ??= Attach(connection.Principal.Name);
        var (result, statusChanged) = UpdateLocked(user, status, summary, hidden);
        if (statusChanged)
        {
            StatusChanged?.Invoke(user.Name, result.Status);
        }
        return result;
    }

    private ((string Status, string? Summary, bool Hidden) Result, bool StatusChanged) UpdateLocked(PresenceUser user, string? status, string? summary, bool? hidden)
    {
        lock (user)
        {
            var newStatus = status ?? user.Status;
            var newSummary = summary is null ? user.Summary : summary.Length == 0 ? null : summary;
            var newHidden = hidden ?? user.Hidden;
            var metaChanged = !string.Equals(newStatus, user.Status, StringComparison.Ordinal) || !string.Equals(newSummary, user.Summary, StringComparison.Ordinal);
            if (!metaChanged && newHidden == user.Hidden)
            {
                return ((user.Status, user.Summary, user.Hidden), false);
            }
            var statusChanged = !string.Equals(newStatus, user.Status, StringComparison.Ordinal);
            user.Status = newStatus;
            user.Summary = newSummary;
            user.Hidden = newHidden;
            foreach (var entry in user.Entries)
            {
                var old = entry.Meta;
                if (newHidden)
                {
                    if (old is not null)
                    {
                        entry.Meta = null;
                        entry.Topic.Leave(user.Name, old);
                    }
                }
                else if (old is null)
                {
                    entry.Meta = NewMeta(entry, null);
                    entry.Topic.Join(user.Name, entry.Meta);
                }
                else if (metaChanged)
                {
                    entry.Meta = NewMeta(entry, old.Ref);
                    entry.Topic.Replace(user.Name, old, entry.Meta);
                }
            }
            return ((user.Status, user.Summary, user.Hidden), statusChanged);
        }
    }

    /// <summary>The presence of <paramref name="topic"/>, or of every topic with anyone tracked when null; topics in ordinal order.</summary>
    public IReadOnlyList<PresenceSnapshot> Snapshot(string? topic = null)
    {
        if (topic is not null)
        {
            var members = _hub.Topics.TryGet(topic, out var live) && live!.PresenceOrNull is { } presence ? presence.Snapshot() : [];
            return [new PresenceSnapshot(topic, members)];
        }
        var all = new List<PresenceSnapshot>();
        foreach (var live in _hub.Topics.Snapshot())
        {
            if (live.PresenceOrNull is { } presence && presence.Snapshot() is { Count: > 0 } members)
            {
                all.Add(new PresenceSnapshot(live.Name, members));
            }
        }
        all.Sort(static (a, b) => string.CompareOrdinal(a.Topic, b.Topic));
        return all;
    }

    /// <summary>The <c>presence.update</c> lobby command: validates, updates, replies <c>ok {status, summary, hidden}</c>.</summary>
    internal ValueTask HandleUpdateAsync(HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        var payload = message.Payload;
        if (payload.ValueKind != JsonValueKind.Object)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, $"{UpdateEvent} takes {{status?, summary?, hidden?}}");
            return ValueTask.CompletedTask;
        }
        string? status = null;
        if (payload.TryGetProperty("status"u8, out var s) && s.ValueKind != JsonValueKind.Null)
        {
            status = s.ValueKind == JsonValueKind.String ? PresenceValues.ParseStatus(s.GetString()) : null;
            if (status is null)
            {
                connection.ReplyError(message, ErrorReasons.InvalidStatus, $"status must be one of {string.Join(", ", PresenceValues.Statuses)}");
                return ValueTask.CompletedTask;
            }
        }
        string? summary = null;
        if (payload.TryGetProperty("summary"u8, out var m))
        {
            if (m.ValueKind == JsonValueKind.Null)
            {
                summary = "";
            }
            else if (m.ValueKind != JsonValueKind.String)
            {
                connection.ReplyError(message, ErrorReasons.InvalidPayload, "summary must be a string (empty or null clears it)");
                return ValueTask.CompletedTask;
            }
            else
            {
                summary = m.GetString()!;
                var max = _hub.Options.MaxPresenceSummaryLength;
                if (summary.Length > max)
                {
                    connection.ReplyError(message, ErrorReasons.TooLarge, $"summary is limited to {max} characters; this one has {summary.Length}");
                    return ValueTask.CompletedTask;
                }
            }
        }
        bool? hidden = null;
        if (payload.TryGetProperty("hidden"u8, out var h) && h.ValueKind != JsonValueKind.Null)
        {
            if (h.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                connection.ReplyError(message, ErrorReasons.InvalidPayload, "hidden must be true or false");
                return ValueTask.CompletedTask;
            }
            hidden = h.GetBoolean();
        }
        var result = Update(connection, status, summary, hidden);
        connection.ReplyOk(message, result, static (w, r) =>
        {
            w.WriteStartObject();
            w.WriteString("status"u8, r.Status);
            if (r.Summary is null)
            {
                w.WriteNull("summary"u8);
            }
            else
            {
                w.WriteString("summary"u8, r.Summary);
            }
            w.WriteBoolean("hidden"u8, r.Hidden);
            w.WriteEndObject();
        });
        return ValueTask.CompletedTask;
    }

    private PresenceMeta NewMeta(PresenceEntry entry, string? previousRef) =>
        new($"{_refPrefix}{Interlocked.Increment(ref _nextRef):x}", previousRef, entry.OnlineAtMs, entry.Client, entry.User.Status, entry.User.Summary);

    internal void Schedule(TopicPresence presence)
    {
        _due.Enqueue(presence);
        if (Interlocked.CompareExchange(ref _armed, 1, 0) == 0)
        {
            _timer.Change(BatchInterval, Timeout.InfiniteTimeSpan);
        }
    }

    private void FlushDue()
    {
        // Disarm before draining: a change queued while draining re-arms the timer (at worst one empty tick).
        Volatile.Write(ref _armed, 0);
        while (_due.TryDequeue(out var presence))
        {
            try
            {
                presence.Flush();
            }
            catch (Exception ex)
            {
                HubLog.PresenceFlushFailed(_hub.Logger, presence.Topic.Name, ex);
            }
        }
    }

    /// <summary>Sends what is still gathered at once (shutdown, tests).</summary>
    public void FlushNow() => FlushDue();

    /// <inheritdoc />
    public void Dispose() => _timer.Dispose();
}

/// <summary>A user's presence settings, shared by all of the user's connections while any is open.</summary>
internal sealed class PresenceUser(string name)
{
    public string Name { get; } = name;
    public string Status { get; set; } = PresenceValues.DefaultStatus;
    public string? Summary { get; set; }
    public bool Hidden { get; set; }

    // Guarded by this object's lock, as is everything below.
    public int Connections { get; set; }
    public bool Dead { get; set; }
    public HashSet<PresenceEntry> Entries { get; } = [];
}

/// <summary>One tracked subscription: its topic, client kind, join time and current meta (null while the user is hidden).</summary>
internal sealed class PresenceEntry(PresenceUser user, TopicPresence topic, string client, long onlineAtMs)
{
    public PresenceUser User { get; } = user;
    public TopicPresence Topic { get; } = topic;
    public string Client { get; } = client;
    public long OnlineAtMs { get; } = onlineAtMs;

    // Guarded by the user's lock.
    public PresenceMeta? Meta { get; set; }
    public bool Removed { get; set; }
}
