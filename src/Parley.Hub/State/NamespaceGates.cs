using System.Text.Json;
using Parley.Hub.Channels;
using Parley.Hub.Connections;
using Parley.Protocol;

namespace Parley.Hub.State;

/// <summary>
/// Async gates for channels whose joins carry a snapshot (state namespaces, task boards, inboxes): a
/// write and its broadcast, or a join's snapshot and subscription, hold the topic's gate, so a joiner's
/// snapshot is exactly what precedes the next change event. A fixed set of gates is shared by hashing
/// the topic name, so memory stays bounded however many topics are ever touched; two topics sharing a
/// gate only wait for each other. Code holding a gate never asks for another (no deadlock).
/// </summary>
public sealed class NamespaceGates
{
    private const int Stripes = 256;
    private readonly SemaphoreSlim[] _gates = [.. Enumerable.Range(0, Stripes).Select(_ => new SemaphoreSlim(1, 1))];

    /// <summary>The gate of <paramref name="topic"/>.</summary>
    public SemaphoreSlim For(string topic)
    {
        ArgumentNullException.ThrowIfNull(topic);
        return _gates[(int)((uint)StringComparer.Ordinal.GetHashCode(topic) % Stripes)];
    }

    /// <summary>
    /// Joins <paramref name="message"/>'s topic under its gate: loads the snapshot, subscribes, and replies
    /// ok with the snapshot written by <paramref name="writeReply"/> before any later change can be broadcast.
    /// </summary>
    /// <param name="afterJoin">Runs under the gate after the reply and the subscription (e.g. to send what waited); it must not throw.</param>
    public async ValueTask<Subscriber> JoinWithSnapshotAsync<TSnapshot>(ParleyHub hub, HubConnection connection, PhoenixMessage message,
        Func<CancellationToken, ValueTask<TSnapshot>> load, Action<Utf8JsonWriter, TSnapshot> writeReply, CancellationToken cancellationToken,
        Func<Subscriber, CancellationToken, Task>? afterJoin = null)
    {
        ArgumentNullException.ThrowIfNull(hub);
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(load);
        var gate = For(message.Topic);
        await gate.WaitAsync(cancellationToken);
        try
        {
            // Nothing can broadcast while the gate is held, so nothing is buffered between subscribing and
            // the snapshot: the snapshot is exactly what precedes the next change.
            var snapshot = await load(cancellationToken);
            Topic topic;
            Subscriber? subscriber;
            do
            {
                topic = hub.Topics.GetOrAdd(message.Topic);
                subscriber = topic.BeginSubscribe(connection, message.JoinRef ?? message.Ref ?? "", storeHead: 0, out _);
            }
            while (subscriber is null);
            connection.ReplyOk(message, snapshot, writeReply);
            topic.CompleteSubscribe(subscriber);
            if (afterJoin is not null)
            {
                await afterJoin(subscriber, cancellationToken);
            }
            return subscriber;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Sends a change event (encoded once) to every subscriber of <paramref name="topic"/>; call it under the topic's gate.</summary>
    public static void Broadcast<TState>(ParleyHub hub, string topic, string @event, TState state, Action<Utf8JsonWriter, TState> writePayload)
    {
        ArgumentNullException.ThrowIfNull(hub);
        if (hub.Topics.TryGet(topic, out var live))
        {
            live!.Broadcast(WireFrames.Text(null, null, topic, @event, state, writePayload));
        }
    }

    /// <summary>Writes <c>{revision, &lt;arrayName&gt;: [...]}</c>: a snapshot or list reply.</summary>
    public static void WriteSnapshot(Utf8JsonWriter w, long revision, ReadOnlySpan<byte> arrayName, IEnumerable<StateEntry> entries, Action<Utf8JsonWriter, StateEntry> writeEntry)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(writeEntry);
        w.WriteStartObject();
        w.WriteNumber("revision"u8, revision);
        w.WriteStartArray(arrayName);
        foreach (var entry in entries)
        {
            writeEntry(w, entry);
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }
}
