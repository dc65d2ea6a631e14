using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Parley.Hub.Channels;
using Parley.Hub.Connections;
using Parley.Hub.State;
using Parley.Protocol;

namespace Parley.Hub.Inbox;

/// <summary>Who an address reaches: a user, or every member of a group and its sub-groups (docs/protocol.md §14).</summary>
public interface IRecipientDirectory
{
    /// <summary>
    /// The users <paramref name="address"/> reaches (<c>bob</c>, or <c>@team</c> for the group and all its
    /// sub-groups), or null with a reason a person can act on when it reaches nobody known.
    /// </summary>
    ValueTask<(IReadOnlyList<string>? Users, string? Reason)> ResolveAsync(string address, CancellationToken cancellationToken);
}

/// <summary>
/// Direct messages (docs/protocol.md §14). <c>dm</c> on <c>hub:lobby</c> stores a message durably for
/// every recipient before it is acked; <c>user:&lt;name&gt;</c> is that user's inbox topic (only they may
/// join). A recipient with status <c>working</c> or <c>dnd</c> gets only <c>now</c> messages pushed live; the
/// rest wait as <c>queued</c> until the status changes (presence, <see cref="Presence.PresenceTracker.StatusChanged"/>),
/// the recipient fetches them (<c>inbox</c>), or their next join. States: queued → delivered → read (<c>ack</c>).
/// </summary>
public sealed class InboxChannel : IChannelHandler
{
    private readonly ParleyHub _hub;
    private readonly IInboxStore _store;
    private readonly IRecipientDirectory _directory;

    /// <param name="events">Where state changes are published (docs/protocol.md §16); null gives the channel a feed of its own.</param>
    public InboxChannel(ParleyHub hub, IInboxStore store, IRecipientDirectory directory, MessageEvents? events = null)
    {
        ArgumentNullException.ThrowIfNull(hub);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(directory);
        _hub = hub;
        _store = store;
        _directory = directory;
        Events = events ?? new MessageEvents();
        hub.Presence.StatusChanged += (user, _) => OnStatusChanged(user);
    }

    /// <summary>The feed of every message's state changes (metadata only).</summary>
    public MessageEvents Events { get; }

    /// <summary>Longest <c>correlation_id</c> of a <c>dm</c>, in characters.</summary>
    public const int MaxCorrelationIdLength = 64;

    /// <summary>The live event on <c>user:</c> topics.</summary>
    public const string DmEvent = "dm";

    /// <summary>Most users one message may reach (after groups are expanded).</summary>
    public const int MaxRecipients = 1000;

    /// <summary>Longest wait of an <c>inbox</c> fetch, in milliseconds.</summary>
    public const int MaxWaitMs = 30_000;

    private const string Prefix = "user:";
    private static readonly string[] Unread = [DeliveryStates.Queued, DeliveryStates.Delivered];
    private static readonly string[] QueuedOnly = [DeliveryStates.Queued];
    private readonly NamespaceGates _gates = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _arrivals = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public string TopicPrefix => Prefix;

    /// <summary>Registers <c>dm</c> and <c>message_status</c> on the lobby.</summary>
    public void RegisterLobbyCommands(Lobby.LobbyChannel lobby)
    {
        ArgumentNullException.ThrowIfNull(lobby);
        lobby.Register("dm", SendAsync);
        lobby.Register("message_status", StatusAsync);
    }

    /// <inheritdoc />
    public async ValueTask<Subscriber?> JoinAsync(ChannelRequest request, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        var owner = message.Topic[Prefix.Length..];
        if (!connection.Principal.IsAuthenticated || owner != connection.Principal.Name || IsUserless(connection.Principal.Name))
        {
            connection.ReplyError(message, ErrorReasons.Forbidden, IsUserless(owner) ? "API keys without a user have no inbox" : $"only {owner} may join {message.Topic}");
            return null;
        }
        if (!TryNumber(message.Payload, "after", 0, long.MaxValue, 0, out var after, out var error))
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, error);
            return null;
        }
        // Under the inbox's gate, right after the reply: every unread message after `after` that the
        // recipient's status allows, to this socket, in order (unread ones are offered again on every
        // join until acked: a socket that died may have taken them with it).
        return await _gates.JoinWithSnapshotAsync(_hub, connection, message, _ => ValueTask.FromResult(0),
            static (w, _) => { w.WriteStartObject(); w.WriteEndObject(); }, cancellationToken,
            afterJoin: (subscriber, ct) => OfferAsync(owner, after, Unread, frame => subscriber.Connection.Send(frame), ct));
    }

    /// <inheritdoc />
    public ValueTask HandleAsync(ChannelRequest request, Subscriber subscriber, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (message.Payload.ValueKind != JsonValueKind.Object)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "inbox events take a JSON object payload");
            return ValueTask.CompletedTask;
        }
        return message.Event switch
        {
            "inbox" => FetchAsync(connection, message, cancellationToken),
            "ack" => AckAsync(connection, message, cancellationToken),
            _ => Unknown(connection, message),
        };
    }

    private static ValueTask Unknown(HubConnection connection, PhoenixMessage message)
    {
        connection.ReplyError(message, ErrorReasons.UnknownEvent, $"user topics take inbox and ack, not '{message.Event}' (send with dm on hub:lobby)");
        return ValueTask.CompletedTask;
    }

    // The user's status changed: push what waited for it to their live inbox sockets.
    private void OnStatusChanged(string user) => _ = DeliverInBackgroundAsync(user);

    private async Task DeliverInBackgroundAsync(string user)
    {
        try
        {
            await DeliverQueuedAsync(user, CancellationToken.None);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            InboxLog.DeliveryFailed(_hub.Logger, user, ex);
        }
    }

    // ---- sending ----

    private async ValueTask SendAsync(HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        var sender = connection.Principal;
        if (!sender.IsAuthenticated || !sender.CanWrite || IsUserless(sender.Name))
        {
            connection.ReplyError(message, ErrorReasons.Forbidden, "guests, read-only keys, API keys without a user and anonymous sockets cannot send direct messages (nobody could answer)");
            return;
        }
        var payload = message.Payload;
        if (payload.ValueKind != JsonValueKind.Object)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "dm takes {to, body, priority?, correlation_id?}");
            return;
        }
        if (!TryAddresses(payload, out var addresses, out var error)
            || !TryBody(payload, _hub.Options.MaxBodyBytes, out var body, out error) || !TryPriority(payload, out var priority, out error)
            || !TryCorrelationId(payload, out var correlationId, out error))
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, error);
            return;
        }
        var recipients = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var address in addresses)
        {
            var (users, reason) = await _directory.ResolveAsync(address, cancellationToken);
            if (users is null)
            {
                connection.ReplyError(message, ErrorReasons.NotFound, reason);
                return;
            }
            recipients.UnionWith(users);
        }
        recipients.Remove(sender.Name); // a group message does not come back to its sender
        if (recipients.Count == 0)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "nobody to send to (the only recipient is you)");
            return;
        }
        if (recipients.Count > MaxRecipients)
        {
            connection.ReplyError(message, ErrorReasons.TooLarge, $"a message reaches at most {MaxRecipients} users");
            return;
        }
        var dm = new DirectMessage("dm-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)), sender.Name, string.Join(",", addresses), body, priority, _hub.NowMs, correlationId);
        var items = await _store.StoreAsync(dm, [.. recipients], cancellationToken);
        Events.Publish(new MessageEvent(dm.Id, MessageEventKinds.Sent, dm.From, dm.To, dm.Priority, dm.CorrelationId, null, dm.SentAtMs, [dm.From, .. recipients]));
        Events.Publish(items.Select(static i => EventOf(i, MessageEventKinds.Queued, i.StateAtMs)));
        connection.ReplyOk(message, items, static (w, items) =>
        {
            w.WriteStartObject();
            w.WriteString("id"u8, items[0].Message.Id);
            w.WriteStartArray("recipients"u8);
            foreach (var item in items)
            {
                w.WriteStringValue(item.Recipient);
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
        foreach (var item in items)
        {
            if (_arrivals.TryRemove(item.Recipient, out var waiting))
            {
                waiting.TrySetResult();
            }
            await DeliverQueuedAsync(item.Recipient, cancellationToken);
        }
    }

    // Under the recipient's gate: push each queued message their status allows to their live inbox
    // sockets, in seq order, once; only what a socket took becomes delivered.
    private async ValueTask DeliverQueuedAsync(string recipient, CancellationToken cancellationToken)
    {
        var topic = Prefix + recipient;
        var gate = _gates.For(topic);
        await gate.WaitAsync(cancellationToken);
        try
        {
            if (!_hub.Topics.TryGet(topic, out var live) || live!.SubscriberCount == 0)
            {
                return; // offline: everything waits for the next join or fetch
            }
            await OfferAsync(recipient, 0, QueuedOnly, frame => live.Broadcast(frame) > 0, cancellationToken);
        }
        finally
        {
            gate.Release();
        }
    }

    // Pages through the recipient's items in `states` after `after`, sends each their status allows with
    // `send`, and marks the queued ones a socket took as delivered. Failures are logged, never thrown:
    // callers have already answered their client.
    private async Task OfferAsync(string recipient, long after, IReadOnlyCollection<string> states, Func<byte[], bool> send, CancellationToken cancellationToken)
    {
        const int Page = 500;
        var taken = new List<InboxItem>();
        try
        {
            var busy = _hub.Presence.StatusOf(recipient) is "working" or "dnd";
            while (true)
            {
                var page = await _store.ReadAsync(recipient, after, states, Page, cancellationToken);
                taken.Clear();
                foreach (var item in page)
                {
                    after = item.Seq;
                    if (busy && item.Message.Priority != DmPriorities.Now)
                    {
                        continue; // waits for the status to change, a fetch, or the next join
                    }
                    if (send(WireFrames.Text(null, null, Prefix + recipient, DmEvent, item, static (w, i) => WriteItem(w, i))) && item.State == DeliveryStates.Queued)
                    {
                        taken.Add(item);
                    }
                }
                if (taken.Count > 0)
                {
                    await _store.MarkAsync(recipient, [.. taken.Select(static i => i.Seq)], DeliveryStates.Delivered, _hub.NowMs, cancellationToken);
                    var at = _hub.NowMs;
                    Events.Publish(taken.Select(i => EventOf(i, MessageEventKinds.Delivered, at)));
                    taken.Clear();
                }
                if (page.Count < Page)
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // They stay queued and are handed over again at the next join, status change or fetch.
            InboxLog.DeliveryFailed(_hub.Logger, recipient, ex);
            var now = _hub.NowMs;
            Events.Publish(taken.Select(i => EventOf(i, MessageEventKinds.Failed, now, "delivery failed; the message stays queued")));
        }
    }

    // ---- the recipient's own operations ----

    private async ValueTask FetchAsync(HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        var me = connection.Principal.Name;
        var payload = message.Payload;
        if (!TryNumber(payload, "limit", 1, 500, 50, out var limit, out var error)
            || !TryNumber(payload, "wait_ms", 0, MaxWaitMs, 0, out var waitMs, out error)
            || !TryNumber(payload, "after", 0, long.MaxValue, 0, out var after, out error))
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, error);
            return;
        }
        var arrival = _arrivals.GetOrAdd(me, static _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        var items = await _store.ReadAsync(me, after, Unread, (int)limit, cancellationToken);
        if (items.Count == 0 && waitMs > 0)
        {
            // The socket keeps serving (heartbeats, acks, leaves) while the fetch waits: it is answered later.
            _ = AnswerWhenArrivedAsync(connection, message, me, after, (int)limit, arrival.Task, TimeSpan.FromMilliseconds(waitMs));
            return;
        }
        await AnswerFetchAsync(connection, message, me, items, cancellationToken);
    }

    private async Task AnswerWhenArrivedAsync(HubConnection connection, PhoenixMessage message, string me, long after, int limit, Task arrival, TimeSpan wait)
    {
        try
        {
            var deadline = _hub.Time.GetUtcNow() + wait;
            // Ends early when a message arrives, the socket closes or the hub stops.
            while (!arrival.IsCompleted && !connection.IsClosing && !_hub.IsShuttingDown && _hub.Time.GetUtcNow() < deadline)
            {
                await Task.WhenAny(arrival, Task.Delay(TimeSpan.FromMilliseconds(250)));
            }
            if (connection.IsClosing)
            {
                return;
            }
            var items = await _store.ReadAsync(me, after, Unread, limit, CancellationToken.None);
            await AnswerFetchAsync(connection, message, me, items, CancellationToken.None);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            InboxLog.DeliveryFailed(_hub.Logger, me, ex);
            connection.ReplyError(message, ErrorReasons.InternalError);
        }
    }

    // What a fetch hands over is delivered.
    private async Task AnswerFetchAsync(HubConnection connection, PhoenixMessage message, string me, IReadOnlyList<InboxItem> items, CancellationToken cancellationToken)
    {
        var gate = _gates.For(Prefix + me);
        await gate.WaitAsync(cancellationToken);
        try
        {
            var queued = items.Where(i => i.State == DeliveryStates.Queued).ToList();
            if (queued.Count > 0)
            {
                var at = _hub.NowMs;
                await _store.MarkAsync(me, [.. queued.Select(static i => i.Seq)], DeliveryStates.Delivered, at, cancellationToken);
                Events.Publish(queued.Select(i => EventOf(i, MessageEventKinds.Delivered, at)));
            }
        }
        finally
        {
            gate.Release();
        }
        connection.ReplyOk(message, items, static (w, items) =>
        {
            w.WriteStartObject();
            w.WriteStartArray("messages"u8);
            foreach (var item in items)
            {
                WriteItem(w, item);
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    private async ValueTask AckAsync(HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        if (!connection.Principal.CanWrite)
        {
            connection.ReplyError(message, ErrorReasons.Forbidden, "a read-only credential reads the inbox but does not mark messages read");
            return;
        }
        if (!message.Payload.TryGetProperty("ids"u8, out var ids) || ids.ValueKind != JsonValueKind.Array || ids.GetArrayLength() is 0 or > 1000
            || ids.EnumerateArray().Any(i => i.ValueKind != JsonValueKind.String))
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "ack needs ids: an array of 1-1000 message ids");
            return;
        }
        var read = await _store.MarkReadAsync(connection.Principal.Name, [.. ids.EnumerateArray().Select(i => i.GetString()!)], _hub.NowMs, cancellationToken);
        Events.Publish(read.Select(static i => EventOf(i, MessageEventKinds.Read, i.StateAtMs)));
        connection.ReplyOk(message, read.Count, static (w, n) =>
        {
            w.WriteStartObject();
            w.WriteNumber("read"u8, n);
            w.WriteEndObject();
        });
    }

    private async ValueTask StatusAsync(HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        if (message.Payload.ValueKind != JsonValueKind.Object || !message.Payload.TryGetProperty("id"u8, out var id) || id.ValueKind != JsonValueKind.String)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "message_status needs {id}");
            return;
        }
        var found = await _store.StatusAsync(id.GetString()!, cancellationToken);
        if (found is not { } status || (status.Message.From != connection.Principal.Name && !connection.Principal.IsAdmin))
        {
            connection.ReplyError(message, ErrorReasons.NotFound, "no message with that id that you sent");
            return;
        }
        connection.ReplyOk(message, status, static (w, s) =>
        {
            w.WriteStartObject();
            w.WriteString("id"u8, s.Message.Id);
            w.WriteString("from"u8, s.Message.From);
            w.WriteString("to"u8, s.Message.To);
            w.WriteString("priority"u8, s.Message.Priority);
            w.WriteNumber("sent_at"u8, s.Message.SentAtMs);
            if (s.Message.CorrelationId is { } correlationId)
            {
                w.WriteString("correlation_id"u8, correlationId);
            }
            w.WriteStartArray("recipients"u8);
            foreach (var r in s.Recipients)
            {
                w.WriteStartObject();
                w.WriteString("name"u8, r.Recipient);
                w.WriteString("state"u8, r.State);
                w.WriteNumber("at"u8, r.StateAtMs);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    // Userless API keys act as key:<name>: not a user, so no inbox and no DMs.
    private static bool IsUserless(string name) => name.StartsWith("key:", StringComparison.Ordinal);

    // ---- payloads ----

    private static MessageEvent EventOf(InboxItem item, string kind, long atMs, string? detail = null) =>
        new(item.Message.Id, kind, item.Message.From, item.Recipient, item.Message.Priority, item.Message.CorrelationId, detail, atMs, [item.Message.From, item.Recipient]);

    private static void WriteItem(Utf8JsonWriter w, InboxItem item)
    {
        w.WriteStartObject();
        w.WriteString("id"u8, item.Message.Id);
        w.WriteNumber("seq"u8, item.Seq);
        w.WriteString("from"u8, item.Message.From);
        w.WriteString("to"u8, item.Message.To);
        w.WriteString("body"u8, item.Message.Body);
        w.WriteString("priority"u8, item.Message.Priority);
        w.WriteNumber("sent_at"u8, item.Message.SentAtMs);
        if (item.Message.CorrelationId is { } correlationId)
        {
            w.WriteString("correlation_id"u8, correlationId);
        }
        w.WriteString("state"u8, item.State == DeliveryStates.Queued ? DeliveryStates.Delivered : item.State); // handing it over delivers it
        w.WriteEndObject();
    }

    private static bool TryAddresses(JsonElement payload, out List<string> addresses, out string error)
    {
        addresses = [];
        error = "to is a user (bob), a group (@team), or an array or comma-separated list of them";
        if (!payload.TryGetProperty("to"u8, out var to))
        {
            return false;
        }
        IEnumerable<string?> raw = to.ValueKind switch
        {
            JsonValueKind.String => to.GetString()!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
            JsonValueKind.Array when to.EnumerateArray().All(a => a.ValueKind == JsonValueKind.String) => to.EnumerateArray().Select(a => a.GetString()),
            _ => [],
        };
        addresses = [.. raw.Where(a => !string.IsNullOrWhiteSpace(a)).Select(a => a!.Trim()).Distinct(StringComparer.Ordinal)];
        return addresses.Count is > 0 and <= MaxRecipients;
    }

    private static bool TryBody(JsonElement payload, int maxBytes, out string body, out string error)
    {
        body = payload.TryGetProperty("body"u8, out var b) && b.ValueKind == JsonValueKind.String ? b.GetString()! : "";
        error = $"body must be a string of 1-{maxBytes} bytes";
        return body.Length > 0 && System.Text.Encoding.UTF8.GetByteCount(body) <= maxBytes;
    }

    private static bool TryPriority(JsonElement payload, out string priority, out string error)
    {
        priority = DmPriorities.Next;
        error = "priority is now, next (the default) or low";
        if (!payload.TryGetProperty("priority"u8, out var p) || p.ValueKind == JsonValueKind.Null)
        {
            return true;
        }
        priority = p.ValueKind == JsonValueKind.String ? p.GetString()! : "";
        return DmPriorities.IsValid(priority);
    }

    private static bool TryCorrelationId(JsonElement payload, out string? correlationId, out string error)
    {
        correlationId = null;
        error = $"correlation_id must be a string of 1-{MaxCorrelationIdLength} characters";
        if (!payload.TryGetProperty("correlation_id"u8, out var c) || c.ValueKind == JsonValueKind.Null)
        {
            return true;
        }
        correlationId = c.ValueKind == JsonValueKind.String ? c.GetString() : null;
        return correlationId is { Length: > 0 and <= MaxCorrelationIdLength };
    }

    private static bool TryNumber(JsonElement payload, string name, long min, long max, long fallback, out long value, out string error)
    {
        value = fallback;
        error = $"{name} must be a whole number in [{min}, {max}]";
        if (payload.ValueKind != JsonValueKind.Object || !payload.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return true;
        }
        return element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out value) && value >= min && value <= max;
    }
}

internal static partial class InboxLog
{
    [LoggerMessage(701, LogLevel.Error, "Delivering queued direct messages to {User} failed")]
    public static partial void DeliveryFailed(ILogger logger, string user, Exception exception);
}
