using System.Text;
using System.Text.Json;
using Parley.Hub.Channels;
using Parley.Hub.History;
using Parley.Protocol;

namespace Parley.Hub.Rooms;

/// <summary>
/// <c>room:&lt;name&gt;</c> topics: durable chat with recovery (docs/protocol.md §Rooms).
/// Join params <c>{since, epoch}</c> (or <c>{since: {offset, epoch}}</c>, or <c>{since_ms}</c>) replay what the
/// client missed before any live message; <c>msg</c> stores then broadcasts; <c>history</c> pages back.
/// Every join is tracked in presence once complete: <c>presence_state</c> follows the reply and the replay.
/// </summary>
public sealed class RoomChannel(ParleyHub hub) : IChannelHandler
{
    /// <summary>Longest room name, in characters.</summary>
    public const int MaxNameLength = 100;

    /// <inheritdoc />
    public string TopicPrefix => "room:";

    /// <summary>True when <paramref name="topic"/> is <c>room:</c> plus 1–100 of <c>[A-Za-z0-9._-]</c>.</summary>
    public static bool IsValidTopic(string topic)
    {
        if (!topic.StartsWith("room:", StringComparison.Ordinal))
        {
            return false;
        }
        var name = topic.AsSpan(5);
        if (name.Length is 0 or > MaxNameLength)
        {
            return false;
        }
        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                return false;
            }
        }
        return true;
    }

    /// <inheritdoc />
    public async ValueTask<Subscriber?> JoinAsync(ChannelRequest request, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        if (!IsValidTopic(message.Topic))
        {
            connection.ReplyError(message, ErrorReasons.InvalidTopic, "room names are 1-100 characters of A-Z a-z 0-9 . _ -");
            return null;
        }
        if (!TryReadRecovery(message.Payload, out var recovery, out var error))
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, error);
            return null;
        }
        if (!Presence.PresenceTracker.TryReadClient(message.Payload, out var client, out error))
        {
            connection.ReplyError(message, ErrorReasons.InvalidClient, error);
            return null;
        }
        // presence: false joins without being tracked or told about presence (a silent reader, such as a
        // log shipper or a load generator: a room of N tracked joiners costs O(N) bytes per join).
        var tracked = true;
        if (message.Payload.ValueKind == JsonValueKind.Object && message.Payload.TryGetProperty("presence"u8, out var presence))
        {
            if (presence.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                connection.ReplyError(message, ErrorReasons.InvalidPayload, "presence must be true or false");
                return null;
            }
            tracked = presence.ValueKind == JsonValueKind.True;
        }

        var joinRef = message.JoinRef ?? message.Ref ?? "";
        // The topic object must exist before the store head is read: a commit published in between is
        // then recorded by the topic (see Topic.BeginSubscribe) instead of being skipped.
        Topic topic;
        TopicPosition position;
        Subscriber? subscriber;
        long head;
        do
        {
            topic = hub.Topics.GetOrAdd(message.Topic);
            position = await hub.History.GetPositionAsync(message.Topic, cancellationToken);
            subscriber = topic.BeginSubscribe(connection, joinRef, position.Head, out head);
        }
        while (subscriber is null);
        var replied = false;
        try
        {
            bool? recovered = recovery.Kind switch
            {
                RecoveryKind.Offset => (recovery.Epoch is null || recovery.Epoch == position.Epoch)
                    && recovery.Since <= head
                    && recovery.Since >= position.FirstRetained - 1,
                RecoveryKind.Time => position.LastTrimmedTimestampMs < recovery.Since,
                _ => null,
            };
            connection.ReplyOk(message, (head, position.Epoch, recovered), static (w, s) =>
            {
                w.WriteStartObject();
                w.WriteNumber("offset"u8, s.head);
                w.WriteString("epoch"u8, s.Epoch);
                if (s.recovered is { } value)
                {
                    w.WriteBoolean("recovered"u8, value);
                }
                w.WriteEndObject();
            });
            replied = true;
            if (recovered == true)
            {
                await ReplayAsync(connection, message.Topic, joinRef, recovery, head, cancellationToken);
            }
            topic.CompleteSubscribe(subscriber);
            if (tracked)
            {
                hub.Presence.Track(subscriber, client);
            }
            return subscriber;
        }
        catch (Exception ex) when (replied && ex is not OperationCanceledException)
        {
            // The client already has its ok: a second reply would be ignored, so tell it the channel
            // errored; phoenix.js then rejoins with backoff (and recovers with since).
            topic.Unsubscribe(subscriber);
            HubLog.ReplayFailed(hub.Logger, message.Topic, connection.Id, ex);
            connection.Send(WireFrames.EmptyEvent(joinRef, joinRef, message.Topic, PhoenixEvents.Error));
            return null;
        }
        catch
        {
            topic.Unsubscribe(subscriber);
            throw;
        }
    }

    private async Task ReplayAsync(Connections.HubConnection connection, string topic, string joinRef, Recovery recovery, long head, CancellationToken cancellationToken)
    {
        var pageSize = hub.Options.ReplayPageSize;
        var byTime = recovery.Kind == RecoveryKind.Time;
        var after = byTime ? -1 : recovery.Since;
        while (after < head)
        {
            var page = after < 0
                ? await hub.History.ReadSinceTimeAsync(topic, recovery.Since, head, pageSize, cancellationToken)
                : await hub.History.ReadRangeAsync(topic, after, head, pageSize, cancellationToken);
            if (page.Count == 0 && after < 0)
            {
                return; // nothing at or after since_ms
            }
            foreach (var stored in page)
            {
                // Retention may trim while a long replay runs; a hole must never pass as recovered.
                if (after >= 0 && stored.Offset != after + 1)
                {
                    throw new ReplayGapException(topic, after + 1, stored.Offset);
                }
                if (!await connection.SendAsync(MessageJson.Frame(joinRef, stored), cancellationToken))
                {
                    return;
                }
                after = stored.Offset;
            }
            if (page.Count == 0)
            {
                throw new ReplayGapException(topic, after + 1, head);
            }
            hub.Metrics.Delivered(page.Count);
            connection.Touch(); // a client consuming its replay is alive, even if its heartbeats wait behind it
        }
    }

    /// <summary>Messages the replay needed were removed while it ran.</summary>
    private sealed class ReplayGapException(string topic, long expected, long found)
        : Exception($"replay of {topic} expected offset {expected} but the store had {found}: removed by retention during the replay");

    /// <inheritdoc />
    public async ValueTask HandleAsync(ChannelRequest request, Subscriber subscriber, CancellationToken cancellationToken)
    {
        var (connection, message) = request;
        switch (message.Event)
        {
            case MessageJson.Event:
                await PushMessageAsync(connection, message, cancellationToken);
                return;
            case "history":
                await HistoryAsync(connection, message, cancellationToken);
                return;
            default:
                connection.ReplyError(message, ErrorReasons.UnknownEvent, $"room topics take msg and history, not '{message.Event}'");
                return;
        }
    }

    private async ValueTask PushMessageAsync(Connections.HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        if (!connection.Principal.CanWrite)
        {
            connection.ReplyError(message, ErrorReasons.Forbidden, "this connection is read-only (a guest, or a read-scoped API key)");
            return;
        }
        if (message.IsBinary)
        {
            connection.ReplyError(message, ErrorReasons.BinaryNotSupported, "send msg as JSON {body}");
            return;
        }
        var payload = message.Payload;
        var options = hub.Options;
        if (payload.ValueKind != JsonValueKind.Object)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "payload must be an object {body, client_id?, meta?}");
            return;
        }
        if (!payload.TryGetProperty("body"u8, out var bodyElement) || bodyElement.ValueKind != JsonValueKind.String)
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "body must be a string");
            return;
        }
        var body = bodyElement.GetString()!;
        if (Encoding.UTF8.GetByteCount(body) > options.MaxBodyBytes)
        {
            connection.ReplyError(message, ErrorReasons.TooLarge, $"body is limited to {options.MaxBodyBytes} bytes");
            return;
        }
        string? clientId = null;
        if (payload.TryGetProperty("client_id"u8, out var clientIdElement) && clientIdElement.ValueKind != JsonValueKind.Null)
        {
            if (clientIdElement.ValueKind != JsonValueKind.String || clientIdElement.GetString() is not { Length: > 0 } id || id.Length > options.MaxClientIdLength)
            {
                connection.ReplyError(message, ErrorReasons.InvalidPayload, $"client_id must be a string of 1-{options.MaxClientIdLength} characters");
                return;
            }
            clientId = id;
        }
        string? metaJson = null;
        if (payload.TryGetProperty("meta"u8, out var metaElement) && metaElement.ValueKind != JsonValueKind.Null)
        {
            if (metaElement.ValueKind != JsonValueKind.Object)
            {
                connection.ReplyError(message, ErrorReasons.InvalidPayload, "meta must be an object");
                return;
            }
            metaJson = metaElement.GetRawText();
            if (Encoding.UTF8.GetByteCount(metaJson) > options.MaxMetaBytes)
            {
                connection.ReplyError(message, ErrorReasons.TooLarge, $"meta is limited to {options.MaxMetaBytes} bytes");
                return;
            }
        }

        var append = new AppendRequest(message.Topic, Guid.CreateVersion7().ToString("N"), hub.NowMs, connection.Principal.Name, body, clientId, metaJson);
        if (!await hub.Appends.EnqueueAsync(new PendingAppend(connection, message.JoinRef, message.Ref, append), cancellationToken))
        {
            connection.ReplyError(message, ErrorReasons.ShuttingDown);
        }
    }

    private async ValueTask HistoryAsync(Connections.HubConnection connection, PhoenixMessage message, CancellationToken cancellationToken)
    {
        var payload = message.Payload;
        var before = long.MaxValue;
        var limit = hub.Options.HistoryDefaultLimit;
        if (payload.ValueKind == JsonValueKind.Object)
        {
            if (payload.TryGetProperty("before"u8, out var b) && b.ValueKind != JsonValueKind.Null)
            {
                if (b.ValueKind != JsonValueKind.Number || !b.TryGetInt64(out before) || before < 1)
                {
                    connection.ReplyError(message, ErrorReasons.InvalidPayload, "before must be a positive integer offset");
                    return;
                }
            }
            if (payload.TryGetProperty("limit"u8, out var l) && l.ValueKind != JsonValueKind.Null)
            {
                if (l.ValueKind != JsonValueKind.Number || !l.TryGetInt32(out limit) || limit < 1 || limit > hub.Options.HistoryMaxLimit)
                {
                    connection.ReplyError(message, ErrorReasons.InvalidPayload, $"limit must be an integer from 1 to {hub.Options.HistoryMaxLimit}");
                    return;
                }
            }
        }
        else if (payload.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined))
        {
            connection.ReplyError(message, ErrorReasons.InvalidPayload, "payload must be an object {before?, limit?}");
            return;
        }
        var page = await hub.History.ReadBeforeAsync(message.Topic, before, limit, cancellationToken);
        // One reply is one frame: keep it well under the outbound queue limit, and say there is more.
        var budget = hub.Options.MaxOutboundQueueBytes / 4;
        var kept = 0;
        long bytes = 0;
        while (kept < page.Count && (kept == 0 || bytes + EstimateBytes(page[kept]) <= budget))
        {
            bytes += EstimateBytes(page[kept]);
            kept++;
        }
        if (kept < page.Count)
        {
            page = page.Take(kept).ToList();
        }
        var position = await hub.History.GetPositionAsync(message.Topic, cancellationToken);
        var more = page.Count > 0 && page[^1].Offset > position.FirstRetained;
        connection.ReplyOk(message, (page, more), static (w, s) =>
        {
            w.WriteStartObject();
            w.WritePropertyName("messages"u8);
            w.WriteStartArray();
            foreach (var stored in s.page)
            {
                MessageJson.Write(w, stored);
            }
            w.WriteEndArray();
            w.WriteBoolean("more"u8, s.more);
            w.WriteEndObject();
        });
    }

    private static long EstimateBytes(StoredMessage message) =>
        128 + (2L * message.Body.Length) + (message.MetaJson?.Length ?? 0) + (message.ClientId?.Length ?? 0) + message.From.Length;

    private enum RecoveryKind
    {
        None,
        Offset,
        Time,
    }

    private readonly record struct Recovery(RecoveryKind Kind, long Since, string? Epoch);

    private static bool TryReadRecovery(JsonElement payload, out Recovery recovery, out string error)
    {
        recovery = default;
        error = "";
        if (payload.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            return true;
        }
        if (payload.ValueKind != JsonValueKind.Object)
        {
            error = "join params must be an object";
            return false;
        }
        string? epoch = null;
        if (payload.TryGetProperty("epoch"u8, out var epochElement) && epochElement.ValueKind != JsonValueKind.Null)
        {
            if (epochElement.ValueKind != JsonValueKind.String)
            {
                error = "epoch must be a string";
                return false;
            }
            epoch = epochElement.GetString();
        }
        if (payload.TryGetProperty("since"u8, out var since) && since.ValueKind != JsonValueKind.Null)
        {
            if (since.ValueKind == JsonValueKind.Object)
            {
                if (!since.TryGetProperty("offset"u8, out var nestedOffset) || nestedOffset.ValueKind != JsonValueKind.Number || !nestedOffset.TryGetInt64(out var offset) || offset < 0)
                {
                    error = "since.offset must be a non-negative integer";
                    return false;
                }
                if (since.TryGetProperty("epoch"u8, out var nestedEpoch) && nestedEpoch.ValueKind != JsonValueKind.Null)
                {
                    if (nestedEpoch.ValueKind != JsonValueKind.String)
                    {
                        error = "since.epoch must be a string";
                        return false;
                    }
                    epoch = nestedEpoch.GetString();
                }
                recovery = new Recovery(RecoveryKind.Offset, offset, epoch);
                return true;
            }
            if (since.ValueKind != JsonValueKind.Number || !since.TryGetInt64(out var flat) || flat < 0)
            {
                error = "since must be a non-negative integer offset";
                return false;
            }
            recovery = new Recovery(RecoveryKind.Offset, flat, epoch);
            return true;
        }
        if (payload.TryGetProperty("since_ms"u8, out var sinceMs) && sinceMs.ValueKind != JsonValueKind.Null)
        {
            if (sinceMs.ValueKind != JsonValueKind.Number || !sinceMs.TryGetInt64(out var ms) || ms < 0)
            {
                error = "since_ms must be a non-negative integer (milliseconds since the Unix epoch)";
                return false;
            }
            recovery = new Recovery(RecoveryKind.Time, ms, null);
        }
        return true;
    }
}
