using System.Text.Json;
using Parley.Hub.Channels;
using Parley.Protocol;

namespace Parley.Hub.Presence;

/// <summary>
/// The presence of one topic: the state every subscriber has been told (as of the last diff) and the
/// changes gathered since, under the topic's lock so that a joiner's <c>presence_state</c> and the
/// diffs are ordered with the topic's subscriber list. Changes go out as one <c>presence_diff</c> per
/// <see cref="HubOptions.PresenceBatchInterval"/>, encoded once for every subscriber; the state a
/// joiner gets is encoded once per diff, not once per joiner.
/// </summary>
/// <remarks>
/// A joiner gets the told state and then every later diff, which is what phoenix.js needs: changes
/// still gathered reach it in the next diff. A diff lists joins and leaves; Phoenix applies the joins
/// first, so a join and a leave of the same presence within one batch cancel out for every subscriber,
/// including one that joined in between.
/// </remarks>
internal sealed class TopicPresence(Topic topic, PresenceTracker tracker)
{
    public const string StateEvent = "presence_state";
    public const string DiffEvent = "presence_diff";

    private readonly Dictionary<string, List<PresenceMeta>> _told = new(StringComparer.Ordinal);
    private List<(string Key, PresenceMeta Meta)>? _joins;
    private List<(string Key, PresenceMeta Meta)>? _leaves;
    private byte[]? _toldJson;
    private bool _scheduled;

    public Topic Topic { get; } = topic;

    private object Lock => Topic.SyncRoot;

    /// <summary>Sends the told state to <paramref name="subscriber"/> with its join_ref. Caller holds the topic lock.</summary>
    public void SendStateLocked(Subscriber subscriber)
    {
        var json = _toldJson ??= EncodeState(_told);
        subscriber.Connection.Send(WireFrames.Text(subscriber.JoinRef, null, Topic.Name, StateEvent, json,
            static (w, raw) => w.WriteRawValue(raw, skipInputValidation: true)));
    }

    public void Join(string key, PresenceMeta meta)
    {
        lock (Lock)
        {
            (_joins ??= []).Add((key, meta));
            Changed();
        }
    }

    public void Leave(string key, PresenceMeta meta)
    {
        lock (Lock)
        {
            (_leaves ??= []).Add((key, meta));
            Changed();
        }
    }

    /// <summary>An update: the old meta leaves and the new one (carrying <c>phx_ref_prev</c>) joins, in one diff.</summary>
    public void Replace(string key, PresenceMeta old, PresenceMeta replacement)
    {
        lock (Lock)
        {
            (_leaves ??= []).Add((key, old));
            (_joins ??= []).Add((key, replacement));
            Changed();
        }
    }

    // Caller holds the lock.
    private void Changed()
    {
        if (tracker.BatchInterval == TimeSpan.Zero)
        {
            Flush();
        }
        else if (!_scheduled)
        {
            _scheduled = true;
            tracker.Schedule(this);
        }
    }

    /// <summary>Folds the gathered changes into the told state and broadcasts them as one <c>presence_diff</c>.</summary>
    public void Flush()
    {
        lock (Lock)
        {
            _scheduled = false;
            var joins = _joins;
            var leaves = _leaves;
            if (joins is null && leaves is null)
            {
                return;
            }
            _joins = null;
            _leaves = null;
            Apply(_told, joins, leaves);
            _toldJson = null;
            var frame = WireFrames.Text(null, null, Topic.Name, DiffEvent, (joins, leaves), static (w, s) =>
            {
                w.WriteStartObject();
                w.WritePropertyName("joins"u8);
                WriteGrouped(w, s.joins);
                w.WritePropertyName("leaves"u8);
                WriteGrouped(w, s.leaves);
                w.WriteEndObject();
            });
            Topic.Broadcast(frame, trackedOnly: true);
        }
    }

    /// <summary>The current presence (told state plus gathered changes), keys in ordinal order.</summary>
    public IReadOnlyList<PresenceMember> Snapshot()
    {
        lock (Lock)
        {
            var copy = new Dictionary<string, List<PresenceMeta>>(_told.Count, StringComparer.Ordinal);
            foreach (var (key, metas) in _told)
            {
                copy[key] = [.. metas];
            }
            Apply(copy, _joins, _leaves);
            return [.. copy.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => new PresenceMember(p.Key, p.Value))];
        }
    }

    // Joins first, then leaves: the order phoenix.js applies a diff in.
    private static void Apply(Dictionary<string, List<PresenceMeta>> state, List<(string Key, PresenceMeta Meta)>? joins, List<(string Key, PresenceMeta Meta)>? leaves)
    {
        if (joins is not null)
        {
            foreach (var (key, meta) in joins)
            {
                if (!state.TryGetValue(key, out var metas))
                {
                    state[key] = metas = new List<PresenceMeta>(1);
                }
                metas.Add(meta);
            }
        }
        if (leaves is not null)
        {
            foreach (var (key, meta) in leaves)
            {
                if (state.TryGetValue(key, out var metas) && metas.Remove(meta) && metas.Count == 0)
                {
                    state.Remove(key);
                }
            }
        }
    }

    private static byte[] EncodeState(Dictionary<string, List<PresenceMeta>> state)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(64 + (state.Count * 128));
        using (var w = new Utf8JsonWriter(buffer, PhoenixJsonCodec.WriterOptions))
        {
            w.WriteStartObject();
            foreach (var (key, metas) in state)
            {
                w.WritePropertyName(key);
                WriteMetas(w, metas);
            }
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteGrouped(Utf8JsonWriter w, List<(string Key, PresenceMeta Meta)>? changes)
    {
        w.WriteStartObject();
        if (changes is not null)
        {
            foreach (var group in changes.GroupBy(static c => c.Key, StringComparer.Ordinal))
            {
                w.WritePropertyName(group.Key);
                WriteMetas(w, group.Select(static c => c.Meta));
            }
        }
        w.WriteEndObject();
    }

    /// <summary>Writes <c>{"metas": [...]}</c>.</summary>
    public static void WriteMetas(Utf8JsonWriter w, IEnumerable<PresenceMeta> metas)
    {
        w.WriteStartObject();
        w.WritePropertyName("metas"u8);
        w.WriteStartArray();
        foreach (var meta in metas)
        {
            meta.Write(w);
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }
}

/// <summary>One key (user) of a topic's presence and its metas (one per connection).</summary>
public sealed record PresenceMember(string Key, IReadOnlyList<PresenceMeta> Metas);

/// <summary>A topic's presence at one moment.</summary>
public sealed record PresenceSnapshot(string Topic, IReadOnlyList<PresenceMember> Members);
