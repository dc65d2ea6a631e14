using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Parley.Hub.Channels;
using Parley.Hub.Connections;
using Parley.Protocol;

namespace Parley.Hub.History;

/// <summary>A push waiting to be stored: who to reply to, and what to store.</summary>
public sealed record PendingAppend(HubConnection Sender, string? JoinRef, string? Ref, AppendRequest Request);

/// <summary>
/// The single writer between pushers and the history store. Pushes queue here without waiting for
/// each other; one loop takes everything queued (up to <see cref="HubOptions.AppendBatchMax"/>),
/// commits it in one store transaction, then — in commit order — replies <c>ok</c> to each pusher and
/// publishes each new message to its topic's subscribers. Nothing is acknowledged before it is durable,
/// and per-topic delivery order is offset order.
/// </summary>
public sealed class AppendPipeline
{
    private readonly Channel<PendingAppend> _queue;
    private readonly IHistoryStore _store;
    private readonly TopicRegistry _topics;
    private readonly HubMetrics _metrics;
    private readonly HubOptions _options;
    private readonly ILogger _logger;
    private Task? _loop;

    internal AppendPipeline(IHistoryStore store, TopicRegistry topics, HubMetrics metrics, HubOptions options, ILogger logger)
    {
        _store = store;
        _topics = topics;
        _metrics = metrics;
        _options = options;
        _logger = logger;
        _queue = Channel.CreateBounded<PendingAppend>(new BoundedChannelOptions(options.AppendQueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    /// <summary>Appends waiting to be committed.</summary>
    public int Pending => _queue.Reader.Count;

    internal void Start() => _loop ??= Task.Run(RunAsync);

    /// <summary>
    /// Queues a push. Waits only when the queue is full (the store is behind), which pauses the pushing
    /// socket's reads. Returns false when the hub is shutting down and takes no more appends.
    /// </summary>
    public async ValueTask<bool> EnqueueAsync(PendingAppend append, CancellationToken cancellationToken)
    {
        try
        {
            await _queue.Writer.WriteAsync(append, cancellationToken);
            return true;
        }
        catch (ChannelClosedException)
        {
            return false;
        }
    }

    /// <summary>Stops taking appends and waits until everything queued is committed and replied.</summary>
    internal async Task CompleteAsync()
    {
        _queue.Writer.TryComplete();
        if (_loop is not null)
        {
            await _loop;
        }
    }

    private async Task RunAsync()
    {
        var batch = new List<PendingAppend>(_options.AppendBatchMax);
        var requests = new List<AppendRequest>(_options.AppendBatchMax);
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync())
        {
            batch.Clear();
            requests.Clear();
            while (batch.Count < _options.AppendBatchMax && reader.TryRead(out var item))
            {
                batch.Add(item);
                requests.Add(item.Request);
            }
            IReadOnlyList<AppendOutcome> outcomes;
            var started = Stopwatch.GetTimestamp();
            try
            {
                outcomes = await _store.AppendBatchAsync(requests);
            }
            catch (Exception ex)
            {
                HubLog.AppendFailed(_logger, batch.Count, ex);
                foreach (var failed in batch)
                {
                    failed.Sender.Send(WireFrames.ErrorReply(failed.JoinRef, failed.Ref, failed.Request.Topic, ErrorReasons.InternalError));
                }
                continue;
            }
            _metrics.Committed(Stopwatch.GetElapsedTime(started).TotalSeconds);
            try
            {
                Deliver(batch, outcomes);
            }
            catch (Exception ex)
            {
                // Never let one bad delivery stop the pipeline: later appends must still commit and be acked.
                HubLog.DeliveryFailed(_logger, ex);
            }
        }
    }

    private void Deliver(List<PendingAppend> batch, IReadOnlyList<AppendOutcome> outcomes)
    {
        // Replies first, grouped per pusher (one queued unit each), so a pusher sees its ack before its
        // own broadcast; then each topic's new messages, encoded once and queued to every subscriber as
        // one unit. Offsets within a topic stay in commit order.
        var replies = new Dictionary<HubConnection, List<byte[]>>(ReferenceEqualityComparer.Instance);
        var published = new Dictionary<string, List<(long Offset, byte[] Frame)>>(StringComparer.Ordinal);
        var stored = 0;
        for (var i = 0; i < batch.Count; i++)
        {
            var pending = batch[i];
            var (message, duplicate) = outcomes[i];
            var reply = WireFrames.Reply(pending.JoinRef, pending.Ref, message.Topic, PhoenixEvents.StatusOk, (message, duplicate), static (w, s) =>
            {
                w.WriteStartObject();
                w.WriteString("id"u8, s.message.Id);
                w.WriteNumber("offset"u8, s.message.Offset);
                w.WriteNumber("ts"u8, s.message.TimestampMs);
                if (s.duplicate)
                {
                    w.WriteBoolean("duplicate"u8, true);
                }
                w.WriteEndObject();
            });
            if (!replies.TryGetValue(pending.Sender, out var senderReplies))
            {
                replies[pending.Sender] = senderReplies = [];
            }
            senderReplies.Add(reply);
            if (duplicate)
            {
                continue;
            }
            stored++;
            if (!published.TryGetValue(message.Topic, out var topicMessages))
            {
                published[message.Topic] = topicMessages = [];
            }
            topicMessages.Add((message.Offset, MessageJson.Frame(null, message)));
        }
        foreach (var (sender, frames) in replies)
        {
            if (frames.Count == 1)
            {
                sender.Send(frames[0]);
            }
            else
            {
                sender.Send(new FrameBatch([.. frames]));
            }
        }
        foreach (var (name, messages) in published)
        {
            if (_topics.TryGet(name, out var topic))
            {
                topic!.PublishBatch(messages);
            }
        }
        _metrics.Stored(stored);
    }
}

/// <summary>The <c>msg</c> event payload: <c>{id, offset, ts, from, body, client_id?, meta?}</c>.</summary>
public static class MessageJson
{
    /// <summary>The event name of stored messages.</summary>
    public const string Event = "msg";

    /// <summary>A complete <c>msg</c> frame; <paramref name="joinRef"/> is null for broadcasts and the join's ref for replays.</summary>
    public static byte[] Frame(string? joinRef, StoredMessage message) =>
        WireFrames.Text(joinRef, null, message.Topic, Event, message, static (w, m) => Write(w, m));

    /// <summary>Writes one message object.</summary>
    public static void Write(System.Text.Json.Utf8JsonWriter writer, StoredMessage message)
    {
        writer.WriteStartObject();
        writer.WriteString("id"u8, message.Id);
        writer.WriteNumber("offset"u8, message.Offset);
        writer.WriteNumber("ts"u8, message.TimestampMs);
        writer.WriteString("from"u8, message.From);
        writer.WriteString("body"u8, message.Body);
        if (message.ClientId is not null)
        {
            writer.WriteString("client_id"u8, message.ClientId);
        }
        if (message.MetaJson is not null)
        {
            writer.WritePropertyName("meta"u8);
            writer.WriteRawValue(message.MetaJson, skipInputValidation: true);
        }
        writer.WriteEndObject();
    }
}
