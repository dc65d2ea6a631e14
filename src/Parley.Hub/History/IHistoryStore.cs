namespace Parley.Hub.History;

/// <summary>
/// A message to append to a topic's durable history. The hub assigns <see cref="Id"/> and
/// <see cref="TimestampMs"/>; the store assigns the offset.
/// </summary>
/// <param name="Topic">The topic, e.g. <c>room:lobby</c>.</param>
/// <param name="Id">A unique message id chosen by the hub.</param>
/// <param name="TimestampMs">Server receive time, milliseconds since the Unix epoch.</param>
/// <param name="From">Who sent it (a user name or a connection id).</param>
/// <param name="Body">The message text (already validated against the body limit).</param>
/// <param name="ClientId">Optional idempotency key; null means "not idempotent".</param>
/// <param name="MetaJson">Optional JSON object text, stored and returned verbatim; null means none.</param>
public sealed record AppendRequest(
    string Topic,
    string Id,
    long TimestampMs,
    string From,
    string Body,
    string? ClientId,
    string? MetaJson);

/// <summary>One message as stored. <see cref="Offset"/> starts at 1 per topic and grows by exactly 1.</summary>
public sealed record StoredMessage(
    string Topic,
    long Offset,
    string Id,
    long TimestampMs,
    string From,
    string Body,
    string? ClientId,
    string? MetaJson);

/// <summary>The result of one append: the stored record, and whether it was a repeat of an earlier
/// append with the same <see cref="AppendRequest.ClientId"/> (in which case nothing new was stored
/// and <see cref="Message"/> is the original record).</summary>
public readonly record struct AppendOutcome(StoredMessage Message, bool Duplicate);

/// <summary>
/// Where a topic's history stands.
/// </summary>
/// <param name="Head">The offset of the newest message; 0 when the topic has no messages yet.</param>
/// <param name="Epoch">Identifies this history. A client whose remembered epoch differs cannot recover by offset.</param>
/// <param name="FirstRetained">The oldest offset still stored; <c>Head + 1</c> when nothing is stored
/// (then everything up to Head was trimmed, or there never was anything: Head = 0, FirstRetained = 1).</param>
/// <param name="LastTrimmedTimestampMs">The largest timestamp among messages removed by retention; 0 if none was ever removed.</param>
public readonly record struct TopicPosition(long Head, string Epoch, long FirstRetained, long LastTrimmedTimestampMs);

/// <summary>Retention limits applied by <see cref="IHistoryStore.TrimAsync"/>.</summary>
/// <param name="MaxMessagesPerTopic">Keep at most this many newest messages per topic; 0 or less means no count limit.</param>
/// <param name="MaxAge">Remove messages older than this; <see cref="TimeSpan.Zero"/> or less means no age limit.</param>
public readonly record struct RetentionPolicy(int MaxMessagesPerTopic, TimeSpan MaxAge);

/// <summary>
/// Durable per-topic message history: the seam every store (SQLite now, PostgreSQL later) implements.
/// Every implementation must pass the storage specification suite (<c>HistoryStoreSpec</c>).
/// </summary>
/// <remarks>
/// Thread safety: all members may be called concurrently. Appends are serialized by the store.
/// </remarks>
public interface IHistoryStore : IAsyncDisposable
{
    /// <summary>
    /// Appends every request in one durable transaction, in list order, and returns one outcome per
    /// request in the same order. Returns only after the data is durable (committed and synced).
    /// Offsets per topic start at 1 and increase by exactly 1 per stored (non-duplicate) message.
    /// A request whose <see cref="AppendRequest.ClientId"/> matches a message still retained in the
    /// same topic (including one earlier in the same batch) stores nothing and returns the original.
    /// If the transaction fails, nothing in the batch is stored and the exception propagates.
    /// </summary>
    ValueTask<IReadOnlyList<AppendOutcome>> AppendBatchAsync(IReadOnlyList<AppendRequest> batch, CancellationToken cancellationToken = default);

    /// <summary>The topic's current position. An unknown topic yields Head 0, FirstRetained 1 and the store's epoch.</summary>
    ValueTask<TopicPosition> GetPositionAsync(string topic, CancellationToken cancellationToken = default);

    /// <summary>Messages with <c>afterOffset &lt; offset &lt;= throughOffset</c>, oldest first, at most <paramref name="limit"/>.</summary>
    ValueTask<IReadOnlyList<StoredMessage>> ReadRangeAsync(string topic, long afterOffset, long throughOffset, int limit, CancellationToken cancellationToken = default);

    /// <summary>Messages with <c>timestamp &gt;= sinceMs</c> and <c>offset &lt;= throughOffset</c>, oldest first, at most <paramref name="limit"/>.</summary>
    ValueTask<IReadOnlyList<StoredMessage>> ReadSinceTimeAsync(string topic, long sinceMs, long throughOffset, int limit, CancellationToken cancellationToken = default);

    /// <summary>Messages with <c>offset &lt; beforeOffset</c>, <b>newest first</b>, at most <paramref name="limit"/>
    /// (scrollback pages). Pass <see cref="long.MaxValue"/> for "from the head".</summary>
    ValueTask<IReadOnlyList<StoredMessage>> ReadBeforeAsync(string topic, long beforeOffset, int limit, CancellationToken cancellationToken = default);

    /// <summary>Removes messages outside <paramref name="policy"/> in every topic (age measured against
    /// <paramref name="nowMs"/>), updating each topic's FirstRetained and LastTrimmedTimestampMs.
    /// Never changes a topic's Head. Returns the number of messages removed.</summary>
    ValueTask<long> TrimAsync(RetentionPolicy policy, long nowMs, CancellationToken cancellationToken = default);

    /// <summary>
    /// Moves a topic's history (messages, head, retention marks) to <paramref name="to"/>, atomically
    /// with respect to appends; reads of <paramref name="from"/> then see an empty topic. Returns false,
    /// moving nothing, when <paramref name="to"/> already has history. A <paramref name="from"/> without
    /// history is a successful no-op.
    /// </summary>
    ValueTask<bool> RenameTopicAsync(string from, string to, CancellationToken cancellationToken = default);
}
